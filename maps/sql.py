"""SQL the ORM cannot say for hot spot analysis and performance reports.

Every statement is parameterised; the few that are put together here are composed only of this
module's constants (the request filter, the hexagon index), never of input. Table names are
Django's (geo311_servicerequest, maps_hotspotcell…) so each statement reads as it runs.
Geometries are stored in EPSG:4326; everything measured is transformed to the run's projected
CRS (``%(srid)s``, metres) first.
"""

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import psycopg.conninfo
import psycopg.sql
from django.db import connection, transaction

# --- the request filter (maps.filters.RequestFilter.params) ---------------------------------
# NULL means "all": with Django's client-side binding the planner sees the literal NULL and
# drops the condition, so a filter on dates alone still uses the requested_at index.
REQUEST_FILTER = """
    (%(start)s::timestamptz IS NULL OR r.requested_at >= %(start)s::timestamptz)
    AND (%(end)s::timestamptz IS NULL OR r.requested_at < %(end)s::timestamptz)
    AND (%(category_ids)s::bigint[] IS NULL OR r.category_id = ANY (%(category_ids)s::bigint[]))
    AND (%(department_ids)s::bigint[] IS NULL
         OR r.department_id = ANY (%(department_ids)s::bigint[]))
    AND (%(status_ids)s::bigint[] IS NULL OR r.status_id = ANY (%(status_ids)s::bigint[]))
"""

# --- hexagons ---------------------------------------------------------------------------------
# The ST_HexagonGrid / ST_Hexagon cell (i, j) of edge %(size)s holding each point (x, y) of
# ``pts``: axial coordinates of the flat-topped layout, rounded in cube coordinates (the nearest
# hexagon centre), then PostGIS's column offset (odd columns half a row up). Arithmetic instead
# of a join with ST_HexagonGrid polygons: one pass over the points, no index, no polygons.
# ``pts`` ends in OFFSET 0 so the planner does not inline it: the expressions below name x and y
# many times, and inlined each would transform the point again.
HEX_INDEX = """
axial AS (
    SELECT x / (1.5 * %(size)s) AS q, y / (sqrt(3.0) * %(size)s) - x / (3.0 * %(size)s) AS r, w
    FROM pts
), rounded AS (
    SELECT q, r, round(q) AS rq, round(r) AS rr, round(-q - r) AS rs, w FROM axial
), hex AS (
    SELECT CASE WHEN abs(rq - q) > abs(rr - r) AND abs(rq - q) > abs(rs + q + r)
                THEN -rr - rs ELSE rq END AS i,
           CASE WHEN abs(rq - q) > abs(rr - r) AND abs(rq - q) > abs(rs + q + r) THEN rr
                WHEN abs(rr - r) > abs(rs + q + r) THEN -rq - rs
                ELSE rr END AS r,
           w
    FROM rounded
)
"""

HEX_COUNTS = (
    """
WITH pts AS (
    SELECT ST_X(g) AS x, ST_Y(g) AS y, 1 AS w
    FROM (SELECT ST_Transform(r.location, %(srid)s) AS g
          FROM geo311_servicerequest r WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """) t
    OFFSET 0
), """
    + HEX_INDEX
    + """
SELECT i::int, (r + floor(i / 2))::int AS j, count(*)::int
FROM hex GROUP BY 1, 2
"""
)

# Per time slice: months in the city's time zone, or weeks from the start of the range.
HEX_COUNTS_BY_SLICE = (
    """
WITH pts AS (
    SELECT ST_X(g) AS x, ST_Y(g) AS y, t AS w
    FROM (SELECT ST_Transform(r.location, %(srid)s) AS g,
                 CASE WHEN %(slice)s = 'month'
                      THEN (extract(year FROM r.requested_at AT TIME ZONE %(tz)s) * 12
                            + extract(month FROM r.requested_at AT TIME ZONE %(tz)s) - 1
                            - %(first_month)s)::int
                      ELSE floor(extract(epoch FROM r.requested_at - %(start)s::timestamptz)
                                 / 604800)::int END AS t
          FROM geo311_servicerequest r WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """) s
    OFFSET 0
), """
    + HEX_INDEX
    + """
SELECT i::int, (r + floor(i / 2))::int AS j, w AS slice, count(*)::int
FROM hex GROUP BY 1, 2, 3
"""
)

# Denominator points (residents, housing units) summed per hexagon of the same grid.
HEX_DENOMINATOR = (
    """
WITH pts AS (
    SELECT ST_X(g) AS x, ST_Y(g) AS y, value AS w
    FROM (SELECT ST_Transform(location, %(srid)s) AS g, value
          FROM maps_denominatorpoint WHERE denominator_id = %(denominator_id)s) t
    OFFSET 0
), """  # noqa: S608 - this module's constants
    + HEX_INDEX
    + """
SELECT i::int, (r + floor(i / 2))::int AS j, sum(w)::float8
FROM hex GROUP BY 1, 2
"""
)

# Every hexagon whose centre lies inside the active jurisdiction outline(s): the cells where a
# request could have been made, so that cells without any are analysed as zeros.
HEX_CELLS_WITHIN = """
WITH outline AS (
    SELECT ST_Transform(ST_Union(b.geom), %(srid)s) AS geom
    FROM boundaries_boundary b WHERE b.version_id = ANY (%(version_ids)s::bigint[])
)
SELECT h.i, h.j
FROM outline, ST_HexagonGrid(%(size)s, outline.geom) h
WHERE ST_Intersects(outline.geom, ST_Centroid(h.geom))
"""


@contextlib.contextmanager
def _analysis_cursor() -> Iterator[Any]:
    """A cursor in a transaction with JIT off: PostGIS's functions are costed so high that
    PostgreSQL JIT-compiles these scans, which took longer (0.8-3.8 s measured on 1.2M
    requests) than running them."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        yield cursor


def _arrays(sql: str, params: dict, columns: int) -> list[np.ndarray]:
    with _analysis_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return [np.zeros(0) for _ in range(columns)]
    table = np.asarray(rows, dtype=float)
    return [table[:, c] for c in range(columns)]


def hex_counts(*, filter_params: dict, srid: int, size_m: float) -> list[np.ndarray]:
    """(i, j, requests) of every hexagon holding at least one filtered request."""
    return _arrays(HEX_COUNTS, {**filter_params, "srid": srid, "size": size_m}, 3)


def hex_counts_by_slice(
    *,
    filter_params: dict,
    srid: int,
    size_m: float,
    slice_unit: str,
    tz: str,
    first_month: int,
) -> list[np.ndarray]:
    """(i, j, slice, requests) per hexagon and time slice (0 = the first month, or the week
    starting at the filter's start)."""
    params = {
        **filter_params,
        "srid": srid,
        "size": size_m,
        "slice": slice_unit,
        "tz": tz,
        "first_month": first_month,
    }
    return _arrays(HEX_COUNTS_BY_SLICE, params, 4)


def hex_denominator(*, denominator_id: int, srid: int, size_m: float) -> list[np.ndarray]:
    """(i, j, sum of values) of every hexagon holding a denominator point."""
    params = {"denominator_id": denominator_id, "srid": srid, "size": size_m}
    return _arrays(HEX_DENOMINATOR, params, 3)


def hex_cells_within(*, version_ids: Sequence[int], srid: int, size_m: float) -> list[np.ndarray]:
    """(i, j) of every hexagon whose centre lies inside the given boundary versions."""
    params = {"version_ids": list(version_ids), "srid": srid, "size": size_m}
    return _arrays(HEX_CELLS_WITHIN, params, 2)


# --- boundaries as cells ----------------------------------------------------------------------
# Requests per boundary of one version: through the subdivided parts (GiST), a request counted
# once per boundary even when it lies on an edge between two parts of it.
BOUNDARY_COUNTS = (
    """
WITH hits AS (
    SELECT DISTINCT p.boundary_id, r.id
    FROM geo311_servicerequest r
    JOIN boundaries_boundarypart p
      ON p.version_id = %(version_id)s AND ST_Intersects(p.geom, r.location)
    WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """
)
SELECT b.code, count(h.id)::int,
       ST_X(ST_Transform(ST_PointOnSurface(b.geom), %(srid)s)),
       ST_Y(ST_Transform(ST_PointOnSurface(b.geom), %(srid)s))
FROM boundaries_boundary b
LEFT JOIN hits h ON h.boundary_id = b.id
WHERE b.version_id = %(version_id)s
GROUP BY b.id
ORDER BY b.code
"""
)

BOUNDARY_DENOMINATOR = """
SELECT b.code, sum(d.value)::float8
FROM boundaries_boundary b
JOIN maps_denominatorpoint d
  ON d.denominator_id = %(denominator_id)s AND ST_Intersects(b.geom, d.location)
WHERE b.version_id = %(version_id)s
GROUP BY b.code
"""


def boundary_counts(*, filter_params: dict, version_id: int, srid: int) -> list[tuple]:
    """(code, requests, x, y) of every boundary of the version, x/y a point inside it in the
    projected CRS."""
    with connection.cursor() as cursor:
        cursor.execute(BOUNDARY_COUNTS, {**filter_params, "version_id": version_id, "srid": srid})
        return cursor.fetchall()


def boundary_denominator(*, denominator_id: int, version_id: int) -> dict[str, float]:
    with connection.cursor() as cursor:
        cursor.execute(
            BOUNDARY_DENOMINATOR, {"denominator_id": denominator_id, "version_id": version_id}
        )
        return dict(cursor.fetchall())


# --- storing cells ----------------------------------------------------------------------------
CELL_STAGE = """
CREATE TEMP TABLE maps_cell_stage (
    cell text, i int, j int, count int, denominator float8, value float8, z float8, p float8,
    q float8, gi_bin smallint, hotspot_class text, trend_z float8, trend_p float8,
    series float8[]
) ON COMMIT DROP
"""

# Hexagons are built by PostGIS from their indices in the projected CRS, then stored in 4326.
STORE_HEX_CELLS = """
INSERT INTO maps_hotspotcell (run_id, cell, geom, count, denominator, value, z, p, q, gi_bin,
                              hotspot_class, trend_z, trend_p, series)
SELECT %(run_id)s, s.cell,
       ST_Multi(ST_Transform(ST_SetSRID(ST_Hexagon(%(size)s, s.i, s.j), %(srid)s), 4326)),
       s.count, s.denominator, s.value, s.z, s.p, s.q, s.gi_bin, s.hotspot_class, s.trend_z,
       s.trend_p, s.series
FROM maps_cell_stage s
"""

STORE_BOUNDARY_CELLS = """
INSERT INTO maps_hotspotcell (run_id, cell, geom, count, denominator, value, z, p, q, gi_bin,
                              hotspot_class, trend_z, trend_p, series)
SELECT %(run_id)s, s.cell, b.geom, s.count, s.denominator, s.value, s.z, s.p, s.q, s.gi_bin,
       s.hotspot_class, s.trend_z, s.trend_p, s.series
FROM maps_cell_stage s
JOIN boundaries_boundary b ON b.version_id = %(version_id)s AND b.code = s.cell
"""


def store_cells(
    *,
    run_id: int,
    rows: Iterable[tuple],
    srid: int,
    size_m: float | None,
    version_id: int | None,
) -> int:
    """COPY the cells (the columns of CELL_STAGE, in order) and store them with their
    geometry: hexagons of ``size_m`` in ``srid``, or the boundaries of ``version_id``. Runs in
    the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS maps_cell_stage")
        cursor.execute(CELL_STAGE)
        with cursor.cursor.copy(
            "COPY maps_cell_stage (cell, i, j, count, denominator, value, z, p, q, gi_bin, "
            "hotspot_class, trend_z, trend_p, series) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        if version_id is None:
            cursor.execute(STORE_HEX_CELLS, {"run_id": run_id, "size": size_m, "srid": srid})
        else:
            cursor.execute(STORE_BOUNDARY_CELLS, {"run_id": run_id, "version_id": version_id})
        return cursor.rowcount


# --- clusters ---------------------------------------------------------------------------------
# ST_ClusterDBSCAN over the filtered requests in metres; each cluster stored with its members,
# a hull (buffered by eps / 2 so two- and three-point clusters have an area), its centre and
# the furthest member's distance from it, its time span and categories. Noise is not stored.
STORE_DBSCAN = (
    """
WITH pts AS (
    SELECT r.id, r.requested_at, r.category_id, ST_Transform(r.location, %(srid)s) AS g
    FROM geo311_servicerequest r WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """
), labelled AS (
    SELECT id, requested_at, category_id, g,
           ST_ClusterDBSCAN(g, eps => %(eps)s, minpoints => %(min_points)s) OVER () AS cid
    FROM pts
), clusters AS (
    SELECT l.cid, count(*) AS size, array_agg(l.id ORDER BY l.requested_at, l.id) AS ids,
           ST_Collect(l.g) AS g, min(l.requested_at) AS first_at,
           max(l.requested_at) AS last_at,
           array_agg(DISTINCT c.service_code ORDER BY c.service_code) AS categories
    FROM labelled l
    JOIN geo311_servicecategory c ON c.id = l.category_id
    WHERE l.cid IS NOT NULL
    GROUP BY l.cid
), shaped AS (
    SELECT *, ST_Centroid(g) AS centre FROM clusters
)
INSERT INTO maps_requestcluster (run_id, label, size, request_ids, geom, centre, radius_m,
                                 first_at, last_at, categories)
SELECT %(run_id)s, row_number() OVER (ORDER BY size DESC, first_at, cid), size, ids,
       ST_Multi(ST_Transform(ST_Buffer(ST_ConvexHull(g), %(eps)s / 2.0, 4), 4326)),
       ST_Transform(centre, 4326), ST_MaxDistance(centre, g), first_at, last_at, categories
FROM shaped
"""
)


def store_dbscan_clusters(
    *, run_id: int, filter_params: dict, srid: int, eps_m: float, min_points: int
) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            STORE_DBSCAN,
            {
                **filter_params,
                "run_id": run_id,
                "srid": srid,
                "eps": eps_m,
                "min_points": min_points,
            },
        )
        return cursor.rowcount


# Just the labels, for the benchmark and the tests: (request id, cluster id or NULL).
DBSCAN_LABELS = (
    """
SELECT r.id, ST_ClusterDBSCAN(ST_Transform(r.location, %(srid)s), eps => %(eps)s,
                              minpoints => %(min_points)s) OVER ()
FROM geo311_servicerequest r WHERE """
    + REQUEST_FILTER
)


def dbscan_labels(
    *, filter_params: dict, srid: int, eps_m: float, min_points: int
) -> list[tuple[int, int | None]]:
    with connection.cursor() as cursor:
        cursor.execute(
            DBSCAN_LABELS, {**filter_params, "srid": srid, "eps": eps_m, "min_points": min_points}
        )
        return cursor.fetchall()


# --- density ----------------------------------------------------------------------------------
# Requests counted on a fine square grid (cells of %(cell)s metres) for the kernel density.
DENSITY_COUNTS = (
    """
SELECT floor(ST_X(g) / %(cell)s)::int AS col, floor(ST_Y(g) / %(cell)s)::int AS row,
       count(*)::int
FROM (SELECT ST_Transform(r.location, %(srid)s) AS g
      FROM geo311_servicerequest r WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """) t
GROUP BY 1, 2
"""
)


def density_counts(*, filter_params: dict, srid: int, cell_m: float) -> list[np.ndarray]:
    """(col, row, requests) of every grid square of ``cell_m`` metres holding requests."""
    return _arrays(DENSITY_COUNTS, {**filter_params, "srid": srid, "cell": cell_m}, 3)


# First and last request time of a filter (the range an emerging analysis slices).
REQUESTED_BOUNDS = (
    "SELECT min(r.requested_at), max(r.requested_at) FROM geo311_servicerequest r WHERE "  # noqa: S608 - this module's constants
    + REQUEST_FILTER
)


def requested_bounds(*, filter_params: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    with connection.cursor() as cursor:
        cursor.execute(REQUESTED_BOUNDS, filter_params)
        return cursor.fetchone()


def copy_denominator_points(
    *, denominator_id: int, points: Iterable[tuple[float, float, float]]
) -> int:
    """COPY (lon, lat, value) rows of one denominator (a city's tax lots are ~1M rows)."""
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            "COPY maps_denominatorpoint (denominator_id, location, value) FROM STDIN"
        ) as copy,
    ):
        for lon, lat, value in points:
            copy.write_row((denominator_id, f"SRID=4326;POINT({lon!r} {lat!r})", value))
            count += 1
    return count


# --- outputs ----------------------------------------------------------------------------------
# A run's cells or clusters as one GeoJSON FeatureCollection, serialised by PostGIS.
CELLS_GEOJSON = """
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', c.cell,
        'geometry', ST_AsGeoJSON(c.geom, 6)::json,
        'properties', json_build_object(
            'cell', c.cell, 'count', c.count, 'denominator', c.denominator, 'value', c.value,
            'z', round(c.z::numeric, 4), 'p', c.p, 'q', c.q, 'gi_bin', c.gi_bin,
            'class', c.hotspot_class, 'trend_z', round(c.trend_z::numeric, 4),
            'trend_p', c.trend_p)
    ) ORDER BY c.cell), '[]'::json)
)::text
FROM maps_hotspotcell c
WHERE c.run_id = %(run_id)s AND (%(significant)s = false OR c.hotspot_class <> 'not_significant'
                                 AND c.hotspot_class <> 'no_pattern')
"""

CLUSTERS_GEOJSON = """
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', c.label,
        'geometry', ST_AsGeoJSON(c.geom, 6)::json,
        'properties', json_build_object(
            'label', c.label, 'size', c.size, 'radius_m', round(c.radius_m::numeric, 1),
            'first_at', c.first_at, 'last_at', c.last_at, 'categories', c.categories,
            'centre', json_build_array(round(ST_X(c.centre)::numeric, 6),
                                       round(ST_Y(c.centre)::numeric, 6)),
            'request_ids', c.request_ids)
    ) ORDER BY c.label), '[]'::json)
)::text
FROM maps_requestcluster c
WHERE c.run_id = %(run_id)s AND c.size >= %(min_size)s
"""


def cells_geojson(*, run_id: int, significant_only: bool = False) -> str:
    with connection.cursor() as cursor:
        cursor.execute(CELLS_GEOJSON, {"run_id": run_id, "significant": significant_only})
        return cursor.fetchone()[0]


def clusters_geojson(*, run_id: int, min_size: int = 0) -> str:
    with connection.cursor() as cursor:
        cursor.execute(CLUSTERS_GEOJSON, {"run_id": run_id, "min_size": min_size})
        return cursor.fetchone()[0]


# The requests' extent in degrees: the planner's estimate from the table statistics (free), or
# the real extent when the table was never analysed.
REQUESTS_EXTENT = """
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
FROM coalesce(ST_EstimatedExtent('geo311_servicerequest', 'location'),
              (SELECT ST_Extent(location) FROM geo311_servicerequest)) e
"""


def requests_extent() -> tuple[float, float, float, float] | None:
    with connection.cursor() as cursor:
        cursor.execute(REQUESTS_EXTENT)
        row = cursor.fetchone()
    return None if row is None or row[0] is None else tuple(row)


# What an analysis result depends on, cheaply: the newest request id and change time (two
# index lookups); a new or changed request changes it.
DATA_VERSION = "SELECT max(id), max(updated_at) FROM geo311_servicerequest"


def data_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute(DATA_VERSION)
        last_id, last_change = cursor.fetchone()
    when = last_change.isoformat() if isinstance(last_change, dt.datetime) else ""
    return f"{last_id or 0}@{when}"


# --- performance reports ---------------------------------------------------------------------
# The polygons of the areas named in a report, from the layer version most of its requests
# were routed with, simplified in metres for a choropleth.
AREA_POLYGONS = """
SELECT b.code, b.name,
       ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(ST_Transform(b.geom, %(srid)s),
                                                              %(simplify_m)s), 4326), 5)
FROM boundaries_boundary b
JOIN boundaries_layerversion v ON v.id = b.version_id
JOIN boundaries_layer l ON l.id = v.layer_id
WHERE l.slug = %(layer)s AND v.number = %(version)s
ORDER BY b.code
"""

# Which version of the layer the filtered requests were routed with, most often.
ROUTED_VERSION = (
    """
SELECT mode() WITHIN GROUP (ORDER BY (b ->> 'version')::int)
FROM (SELECT r.routing FROM geo311_servicerequest r WHERE """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """ LIMIT 10000) r
CROSS JOIN LATERAL jsonb_array_elements(r.routing -> 'boundaries') b
WHERE b ->> 'layer' = %(layer)s
"""
)


def area_polygons(*, layer: str, version: int, srid: int, simplify_m: float) -> list[tuple]:
    """(code, name, GeoJSON geometry text) of the boundaries of one layer version."""
    with connection.cursor() as cursor:
        cursor.execute(
            AREA_POLYGONS,
            {"layer": layer, "version": version, "srid": srid, "simplify_m": simplify_m},
        )
        return cursor.fetchall()


def routed_version(*, filter_params: dict, layer: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(ROUTED_VERSION, {**filter_params, "layer": layer})
        return cursor.fetchone()[0]


# --- request facts ----------------------------------------------------------------------------
# The fixed part of a fact's ``packed`` record, big-endian, then one int4 per layer of the
# refresh mark (the id of the boundary the request was routed to in it, 0 for none).
FACTS_FIXED = (
    ("department_id", ">i8"),
    ("category_id", ">i8"),
    ("month", ">i4"),  # year × 12 + month − 1 of requested_at, in the city's time zone
    ("closed_month", ">i4"),  # the same of closed_at, −1 while open
    ("requested_epoch", ">f8"),  # seconds
    ("ack_h", ">f8"),  # hours to the first status change, NaN without one
    ("close_d", ">f8"),  # days to closing, NaN while open
    ("sla_h", ">f8"),  # hours from creation to expected_at, NaN without an SLA
)

# Facts of the requests that have none (new, or made by a transaction still open at the last
# refresh; looked for only when ``missing``: the counts differ) and of those changed since
# ``since`` (the last refresh's start less a margin for transactions open then); ``rebuild``
# rewrites them all. The first status change is the first
# event whose status is not the initial one; the boundary of each layer is found from the
# (layer, version, code) frozen in the request's routing. Unchanged rows are not rewritten.
FACTS_UPSERT = """
WITH todo AS (
    SELECT r.id FROM geo311_servicerequest r
    WHERE %(rebuild)s
       OR %(missing)s AND NOT EXISTS (SELECT 1 FROM maps_requestfact f WHERE f.request_id = r.id)
    UNION
    SELECT r.id FROM geo311_servicerequest r WHERE r.updated_at >= %(since)s
), facts AS (
    SELECT r.id, r.department_id, r.category_id, r.status_id, r.requested_at, r.closed_at,
           r.expected_at, fc.at AS first_change_at, r.updated_at,
           int8send(coalesce(r.department_id, 0)) || int8send(r.category_id)
           || int4send((date_part('year', r.requested_at AT TIME ZONE %(tz)s) * 12
                        + date_part('month', r.requested_at AT TIME ZONE %(tz)s) - 1)::int4)
           || int4send(coalesce((date_part('year', r.closed_at AT TIME ZONE %(tz)s) * 12
                                 + date_part('month', r.closed_at AT TIME ZONE %(tz)s) - 1)::int4,
                                -1))
           || float8send(date_part('epoch', r.requested_at))
           || float8send(coalesce(date_part('epoch', fc.at - r.requested_at) / 3600.0, 'NaN'))
           || float8send(coalesce(date_part('epoch', r.closed_at - r.requested_at) / 86400.0,
                                  'NaN'))
           || float8send(coalesce(date_part('epoch', r.expected_at - r.requested_at) / 3600.0,
                                  'NaN'))
           || coalesce(ar.ids, ''::bytea) AS packed
    FROM todo
    JOIN geo311_servicerequest r ON r.id = todo.id
    LEFT JOIN LATERAL (
        SELECT min(e.created_at) AS at FROM geo311_statusevent e
        WHERE e.request_id = r.id AND e.status_id <> %(initial_status_id)s
    ) fc ON true
    LEFT JOIN LATERAL (
        SELECT string_agg(int4send(coalesce(bd.id, 0)::int4), ''::bytea ORDER BY ly.pos) AS ids
        FROM unnest(%(layers)s::text[]) WITH ORDINALITY ly(slug, pos)
        LEFT JOIN LATERAL (
            SELECT e FROM jsonb_array_elements(r.routing -> 'boundaries') e
            WHERE e ->> 'layer' = ly.slug LIMIT 1
        ) routed ON true
        LEFT JOIN boundaries_layer l ON l.slug = ly.slug
        LEFT JOIN boundaries_layerversion v
               ON v.layer_id = l.id AND v.number = (routed.e ->> 'version')::int
        LEFT JOIN boundaries_boundary bd
               ON bd.version_id = v.id AND bd.code = routed.e ->> 'code'
    ) ar ON true
)
INSERT INTO maps_requestfact AS f (
    request_id, department_id, category_id, status_id, requested_at, closed_at, expected_at,
    first_change_at, updated_at, packed)
SELECT * FROM facts
ON CONFLICT (request_id) DO UPDATE SET
    department_id = EXCLUDED.department_id, category_id = EXCLUDED.category_id,
    status_id = EXCLUDED.status_id, requested_at = EXCLUDED.requested_at,
    closed_at = EXCLUDED.closed_at, expected_at = EXCLUDED.expected_at,
    first_change_at = EXCLUDED.first_change_at, updated_at = EXCLUDED.updated_at,
    packed = EXCLUDED.packed
WHERE (f.status_id, f.updated_at, f.packed) IS DISTINCT FROM
      (EXCLUDED.status_id, EXCLUDED.updated_at, EXCLUDED.packed)
"""

FACTS_PRUNE = """
DELETE FROM maps_requestfact f
WHERE NOT EXISTS (SELECT 1 FROM geo311_servicerequest r WHERE r.id = f.request_id)
"""

# Whether facts may be missing or left over: the two tables hold different sets of ids
# exactly when their counts or their largest ids differ, or a deletion and an insertion
# balanced out (then the anti-joins of the next rebuild or count change catch it).
FACTS_COUNTS = """
SELECT (SELECT count(*) FROM geo311_servicerequest), (SELECT max(id) FROM geo311_servicerequest),
       (SELECT count(*) FROM maps_requestfact), (SELECT max(request_id) FROM maps_requestfact)
"""


def facts_refresh(
    *,
    since: dt.datetime,
    initial_status_id: int,
    tz: str,
    layers: Sequence[str],
    rebuild: bool,
) -> tuple[int, int]:
    """(facts written, facts of deleted requests removed). Runs in the caller's transaction;
    the table's statistics are refreshed after a large change."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(FACTS_COUNTS)
        requests, last_request, facts, last_fact = cursor.fetchone()
        differ = (requests, last_request) != (facts, last_fact)
        cursor.execute(
            FACTS_UPSERT,
            {
                "since": since,
                "initial_status_id": initial_status_id,
                "tz": tz,
                "layers": list(layers),
                "rebuild": rebuild,
                "missing": differ,
            },
        )
        written = cursor.rowcount
        pruned = 0
        if differ or rebuild:
            cursor.execute(FACTS_PRUNE)
            pruned = cursor.rowcount
        if written + pruned > 10_000:
            cursor.execute("ANALYZE maps_requestfact")
        return written, pruned


# What a performance report reads: the packed records of the filter's facts (and, for the
# backlog, of the requests made before its range and still open in it), joined by the server
# into one bytea per block of ids: a million requests cost one pass and no Python object per
# value (a COPY costs one per row, psycopg's rows one per value). Blocks keep each value far
# below bytea's 1 GB limit.
FACTS_BLOCK = 4_000_000
FACTS_ID_RANGE = "SELECT min(request_id), max(request_id) FROM maps_requestfact"
FACTS_FOR_REPORT = (
    """
SELECT count(*), string_agg(r.packed, ''::bytea)
FROM maps_requestfact r
WHERE r.request_id >= %(first_id)s AND r.request_id < %(after_id)s AND """
    + REQUEST_FILTER
    + """
  AND (%(range_start)s::timestamptz IS NULL OR r.requested_at >= %(range_start)s::timestamptz
       OR r.closed_at IS NULL OR r.closed_at >= %(range_start)s::timestamptz)
"""
)


def facts_dtype(layers: int) -> np.dtype:
    return np.dtype([*FACTS_FIXED, *((f"area_{n}", ">i4") for n in range(layers))])


def _unpack(row: tuple | None, dtype: np.dtype) -> np.ndarray:
    count, packed = row or (0, b"")
    block = np.frombuffer(packed or b"", dtype=dtype)
    if len(block) != count:
        raise ValueError(
            f"{len(block)} fact records unpacked, {count} sent: the facts were built for other "
            "layers; refresh them"
        )
    return block


def _conninfo() -> str:
    """libpq parameters of Django's database, for the report's extra connections."""
    db = connection.settings_dict
    libpq = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options")
    extra = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k in libpq}
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=str(db["PORT"]) if db["PORT"] else None,
        **extra,
    )


def _fetch_block(
    conninfo: str, snapshot: str, statement: str, params: dict, dtype: np.dtype
) -> np.ndarray:
    """One block of packed records on a connection of its own, in the snapshot given."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # A utility statement: the snapshot id goes in as a quoted literal, not a parameter.
        conn.execute(
            psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}").format(psycopg.sql.Literal(snapshot))
        )
        conn.execute("SET LOCAL jit = off")
        row = conn.execute(statement, params, binary=True).fetchone()
        conn.execute("ROLLBACK")
    return _unpack(row, dtype)


def _packed_blocks(
    *, statement: str, id_range: str, params: dict, dtype: np.dtype, parallel: int
) -> np.ndarray:
    """``statement`` (a ``count(*), string_agg(<fixed-width record>)`` over ids from
    %(first_id)s to before %(after_id)s) run over blocks of the ids ``id_range`` spans, as one
    numpy structured array. With ``parallel`` > 1 the blocks are split among as many extra
    connections reading the same snapshot (exported by this transaction), so the server works
    on as many cores. Not inside an outer transaction: the other connections would not see
    what it wrote (a refresh of the facts in the same request, a test's rows)."""
    parallel = 1 if connection.in_atomic_block else parallel
    with _analysis_cursor() as django_cursor:
        django_cursor.execute(id_range)
        low, high = django_cursor.fetchone()
        if low is None:
            return np.zeros(0, dtype=dtype)
        span = high + 1 - low
        size = min(FACTS_BLOCK, -(-span // max(parallel, 1)))
        blocks = [
            {**params, "first_id": first, "after_id": first + size}
            for first in range(low, high + 1, size)
        ]
        if parallel > 1 and len(blocks) > 1:
            django_cursor.execute("SELECT pg_export_snapshot()")
            snapshot = django_cursor.fetchone()[0]
            conninfo = _conninfo()
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                parts = list(
                    pool.map(
                        lambda block: _fetch_block(conninfo, snapshot, statement, block, dtype),
                        blocks,
                    )
                )
        else:
            # A server-binding cursor on Django's connection (same transaction): bytea comes
            # back as raw bytes only in binary results, which Django's client-side cursor
            # cannot ask for.
            with psycopg.Cursor(django_cursor.cursor.connection) as cursor:
                parts = []
                for block in blocks:
                    cursor.execute(statement, block, binary=True)
                    parts.append(_unpack(cursor.fetchone(), dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def facts_for_report(*, params: dict, layers: int, parallel: int = 1) -> np.ndarray:
    """The packed records of FACTS_FOR_REPORT as one numpy structured array
    (``facts_dtype(layers)``). ``params`` are the filter's with ``start`` None and the
    range's start as ``range_start``; ``parallel`` connections (see ``_packed_blocks``)."""
    return _packed_blocks(
        statement=FACTS_FOR_REPORT,
        id_range=FACTS_ID_RANGE,
        params=params,
        dtype=facts_dtype(layers),
        parallel=parallel,
    )


# The filtered requests' points in the projected CRS, as packed (x, y) pairs: for binning in
# numpy when several connections can project them at once (see maps.services.hex_request_counts).
REQUEST_ID_RANGE = "SELECT min(id), max(id) FROM geo311_servicerequest"
PROJECTED_POINTS = (
    """
SELECT count(*), string_agg(float8send(ST_X(g)) || float8send(ST_Y(g)), ''::bytea)
FROM (SELECT ST_Transform(r.location, %(srid)s) AS g
      FROM geo311_servicerequest r
      WHERE r.id >= %(first_id)s AND r.id < %(after_id)s AND """  # noqa: S608 - this module's constants
    + REQUEST_FILTER
    + """
      OFFSET 0) t
"""
)


def projected_points(*, filter_params: dict, srid: int, parallel: int) -> np.ndarray:
    """(n, 2) metres in ``srid`` of the filtered requests, read on ``parallel`` connections."""
    points = _packed_blocks(
        statement=PROJECTED_POINTS,
        id_range=REQUEST_ID_RANGE,
        params={**filter_params, "srid": srid},
        dtype=np.dtype([("x", ">f8"), ("y", ">f8")]),
        parallel=parallel,
    )
    return np.column_stack([points["x"].astype(float), points["y"].astype(float)])
