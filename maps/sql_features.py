"""GeoJSON feature collections built by PostGIS, for the map layers and OGC API - Features.

Why SQL: ``json_build_object`` / ``json_agg`` / ``ST_AsGeoJSON`` write a page of features in
the database, and the view passes them on as one string, encoded once (no GEOS object, no
Python dict per feature): for a thousand features that is an order of magnitude less work than
a serializer (bench ``geojson_1000``). The page comes back as text, not bytea: Django's
connection reads results in text format, where a bytea travels hex-encoded, twice its size, and
decoding that took a fifth of a 1,000-feature page's time.

Privacy: a request's geometry is ``geo311_public_location`` (migration 0009: a sensitive
category's cell centre), its address is withheld for a sensitive category, and no reporter
column is ever selected. A bounding box tests the *public* point, so a box cannot find a
sensitive request's exact place; the exact point, widened by a grid cell, lets the GiST index
narrow first. Everything is WGS84 (EPSG:4326); coordinates are printed to 6 decimals.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connection

# EPSG:3857 metres per degree of longitude, and at most that per degree of latitude: a cell of
# the sensitive grid spans at most grid_m / this degrees either way.
METRES_PER_WEB_MERCATOR_DEGREE = 111_319.0

# The filters of a requests page. Every value is a parameter; a NULL parameter leaves its test
# out (PostgreSQL folds "NULL IS NULL" away when the values are bound client-side, as Django's
# psycopg 3 backend does).
_REQUEST_FILTERS = """
    (%(codes)s::text[] IS NULL OR c.service_code = ANY (%(codes)s::text[]))
    AND (%(statuses)s::text[] IS NULL OR s.open311_status = ANY (%(statuses)s::text[])
         OR s.code = ANY (%(statuses)s::text[]))
    AND (%(start)s::timestamptz IS NULL OR r.requested_at >= %(start)s::timestamptz)
    AND (%(end)s::timestamptz IS NULL OR r.requested_at <= %(end)s::timestamptz)
    AND (%(west)s::float8 IS NULL OR (
        r.location && ST_MakeEnvelope(%(west)s::float8 - %(cell)s, %(south)s::float8 - %(cell)s,
                                      %(east)s::float8 + %(cell)s, %(north)s::float8 + %(cell)s,
                                      4326)
        AND geo311_public_location(r.location, c.sensitive, %(grid)s::float8)
            && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)))
    AND (%(public_id)s::text IS NULL OR r.public_id = %(public_id)s::text)
"""

_REQUEST_FROM = """
    FROM geo311_servicerequest r
    JOIN geo311_servicecategory c ON c.id = r.category_id
    JOIN geo311_status s ON s.id = r.status_id
"""

# Times as UTC to the second, the form GDAL and browsers read as a date-time.
_UTC = """to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""

# One page of requests (ordered by id, one row past the page to know whether another follows),
# its features as one JSON array (text), how many it holds, the last id (the keyset
# cursor of the next page) and, when asked, how many match in all.
# Built from this module's constants only; every value is a parameter.
REQUEST_PAGE = f"""
WITH ids AS (
    -- The page's ids first: rows skipped by an offset cost an index entry and the filters'
    -- joins, not their public location and output columns.
    SELECT r.id
    {_REQUEST_FROM}
    WHERE {_REQUEST_FILTERS}
      AND (%(after)s::bigint IS NULL OR r.id > %(after)s::bigint)
    ORDER BY r.id
    LIMIT %(limit)s::int + 1 OFFSET %(offset)s::int
), rows AS (
    SELECT r.id, r.public_id, c.service_code, c.name AS service_name, c.sensitive,
           s.open311_status, s.code AS status_code, s.name AS status_name,
           r.department_id, r.requested_at, r.updated_at, r.closed_at,
           CASE WHEN c.sensitive THEN '' ELSE r.address END AS address,
           geo311_public_location(r.location, c.sensitive, %(grid)s::float8) AS geom
    FROM ids
    JOIN geo311_servicerequest r ON r.id = ids.id
    JOIN geo311_servicecategory c ON c.id = r.category_id
    JOIN geo311_status s ON s.id = r.status_id
), page AS (
    SELECT rows.*, row_number() OVER (ORDER BY rows.id) AS n FROM rows
)
SELECT coalesce(json_agg(json_build_object(
           'type', 'Feature',
           'id', p.public_id,
           'geometry', ST_AsGeoJSON(p.geom, 6)::json,
           'properties', properties
       ) ORDER BY p.id) FILTER (WHERE p.n <= %(limit)s), '[]')::text,
       count(*) FILTER (WHERE p.n <= %(limit)s),
       count(*) > %(limit)s,
       max(p.id) FILTER (WHERE p.n <= %(limit)s),
       CASE WHEN %(count)s THEN (SELECT count(*) {_REQUEST_FROM} WHERE {_REQUEST_FILTERS}) END
FROM page p
LEFT JOIN geo311_department d ON d.id = p.department_id
-- The properties as a row whose column names are their names: written as one JSON object
-- with less work per feature than a json_build_object of as many pairs.
CROSS JOIN LATERAL (
    SELECT p.public_id AS service_request_id,
           p.service_code AS service_code,
           p.service_name AS service_name,
           p.open311_status AS status,
           p.status_code AS detailed_status,
           p.status_name AS status_name,
           d.name AS agency_responsible,
           {_UTC.format(column="p.requested_at")} AS requested_datetime,
           {_UTC.format(column="p.updated_at")} AS updated_datetime,
           {_UTC.format(column="p.closed_at")} AS closed_datetime,
           p.address AS address,
           CASE WHEN p.sensitive THEN %(grid)s::float8 ELSE 0 END AS location_precision_m
) properties
"""  # noqa: S608


@dataclass(frozen=True)
class Page:
    """One page of features: ``features`` is the GeoJSON array, UTF-8 bytes."""

    features: bytes
    returned: int
    more: bool  # another page follows
    last_id: int | None  # keyset cursor: the next page starts after it
    matched: int | None  # every feature the filters match, when counted


def request_page(
    *,
    service_codes: list[str] | None,
    statuses: list[str] | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    bbox: tuple[float, float, float, float] | None,
    limit: int,
    offset: int = 0,
    after: int | None = None,
    public_id: str | None = None,
    count: bool = False,
    grid_m: float,
) -> Page:
    """A page of requests as public GeoJSON features (see the module docstring).

    ``statuses`` are Open311 statuses (open, closed) or city status codes; ``start``/``end``
    bound the requested time, inclusive; ``bbox`` is (west, south, east, north) in degrees;
    ``after`` is a keyset cursor (an id from ``last_id``), ``offset`` skips rows instead.
    """
    west, south, east, north = bbox if bbox else (None, None, None, None)
    params = {
        "codes": service_codes or None,
        "statuses": statuses or None,
        "start": start,
        "end": end,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "cell": grid_m / METRES_PER_WEB_MERCATOR_DEGREE,
        "grid": grid_m,
        "public_id": public_id,
        "after": after,
        "limit": limit,
        "offset": offset,
        "count": count,
    }
    with connection.cursor() as cursor:
        cursor.execute(REQUEST_PAGE, params)
        features, returned, more, last_id, matched = cursor.fetchone()
    return Page(features.encode(), int(returned), bool(more), last_id, matched)


# The extent the public may know of all requests: the box of the table's column, rounded
# outwards to 0.01° so that no corner is any one request's exact coordinate, and the first and
# last requested times. The exact box (one scan, ~0.1 s per million requests): the planner's
# ST_EstimatedExtent comes from a sample and may leave requests outside or reach far past them.
REQUEST_EXTENT = """
SELECT floor(ST_XMin(e) * 100) / 100, floor(ST_YMin(e) * 100) / 100,
       ceil(ST_XMax(e) * 100) / 100, ceil(ST_YMax(e) * 100) / 100, first, last
FROM (SELECT ST_Extent(location) AS e, min(requested_at) AS first, max(requested_at) AS last
      FROM geo311_servicerequest) x
"""


@dataclass(frozen=True)
class Extent:
    bbox: tuple[float, float, float, float] | None
    start: dt.datetime | None = None
    end: dt.datetime | None = None


def request_extent() -> Extent:
    with connection.cursor() as cursor:
        cursor.execute(REQUEST_EXTENT)
        west, south, east, north, start, end = cursor.fetchone()
    bbox = None if west is None else (float(west), float(south), float(east), float(north))
    return Extent(bbox, start, end)


# The boundaries of a layer's active version. ``simplify_m`` simplifies in metres in the UTM
# zone of the version's centre (as boundaries.sql does for its own GeoJSON).
_BOUNDARY_FILTERS = """
    l.slug = %(slug)s AND v.status = 'active'
    AND (%(west)s::float8 IS NULL
         OR b.geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326))
    AND (%(fid)s::bigint IS NULL OR b.id = %(fid)s::bigint)
"""

_BOUNDARY_FROM = """
    FROM boundaries_boundary b
    JOIN boundaries_layerversion v ON v.id = b.version_id
    JOIN boundaries_layer l ON l.id = v.layer_id
"""

BOUNDARY_PAGE = f"""
WITH rows AS (
    SELECT b.id, b.code, b.name, b.geom, l.slug, v.number
    {_BOUNDARY_FROM}
    WHERE {_BOUNDARY_FILTERS}
    ORDER BY b.code, b.id
    LIMIT %(limit)s::int + 1 OFFSET %(offset)s::int
), page AS (
    SELECT rows.*, row_number() OVER (ORDER BY rows.code, rows.id) AS n FROM rows
), utm AS (
    SELECT CASE WHEN ST_Y(c) >= 0 THEN 32600 ELSE 32700 END
           + floor((ST_X(c) + 180) / 6)::int + 1 AS srid
    FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c FROM page) centre
)
SELECT coalesce(json_agg(json_build_object(
           'type', 'Feature',
           'id', p.id,
           'geometry', ST_AsGeoJSON(
               CASE WHEN %(simplify_m)s::float8 > 0
                    THEN ST_Multi(ST_Transform(ST_SimplifyPreserveTopology(
                             ST_Transform(p.geom, utm.srid), %(simplify_m)s::float8), 4326))
                    ELSE p.geom END, 6)::json,
           'properties', json_build_object(
               'code', p.code, 'name', p.name, 'layer', p.slug, 'version', p.number)
       ) ORDER BY p.n) FILTER (WHERE p.n <= %(limit)s), '[]')::text,
       count(*) FILTER (WHERE p.n <= %(limit)s),
       count(*) > %(limit)s,
       max(p.id) FILTER (WHERE p.n <= %(limit)s),
       CASE WHEN %(count)s THEN (SELECT count(*) {_BOUNDARY_FROM} WHERE {_BOUNDARY_FILTERS}) END
FROM page p CROSS JOIN utm
"""  # noqa: S608


def boundary_page(
    *,
    slug: str,
    bbox: tuple[float, float, float, float] | None,
    simplify_m: float,
    limit: int,
    offset: int = 0,
    fid: int | None = None,
    count: bool = False,
) -> Page:
    """A page of a layer's active boundaries as GeoJSON features (code, name, layer, version
    number), ordered by code; ``simplify_m`` in metres (0: full detail)."""
    west, south, east, north = bbox if bbox else (None, None, None, None)
    params = {
        "slug": slug,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "fid": fid,
        "simplify_m": simplify_m,
        "limit": limit,
        "offset": offset,
        "count": count,
    }
    with connection.cursor() as cursor:
        cursor.execute(BOUNDARY_PAGE, params)
        features, returned, more, last_id, matched = cursor.fetchone()
    return Page(features.encode(), int(returned), bool(more), last_id, matched)


# Each layer with an active version, its title and its extent (the box of its boundaries).
BOUNDARY_LAYERS = """
SELECT l.slug, l.name, l.kind, l.description, v.number,
       ST_XMin(e.box), ST_YMin(e.box), ST_XMax(e.box), ST_YMax(e.box)
FROM boundaries_layer l
JOIN boundaries_layerversion v ON v.layer_id = l.id AND v.status = 'active'
CROSS JOIN LATERAL (
    SELECT ST_Extent(b.geom) AS box FROM boundaries_boundary b WHERE b.version_id = v.id
) e
WHERE %(slug)s::text IS NULL OR l.slug = %(slug)s::text
ORDER BY l.slug
"""


@dataclass(frozen=True)
class BoundaryLayer:
    slug: str
    name: str
    kind: str
    description: str
    version: int
    extent: Extent


def boundary_layers(*, slug: str | None = None) -> list[BoundaryLayer]:
    """The layers that have an active version (only ``slug``'s when given)."""
    with connection.cursor() as cursor:
        cursor.execute(BOUNDARY_LAYERS, {"slug": slug})
        rows = cursor.fetchall()
    return [
        BoundaryLayer(
            slug,
            name,
            kind,
            description,
            number,
            Extent(None if west is None else (west, south, east, north)),
        )
        for slug, name, kind, description, number, west, south, east, north in rows
    ]
