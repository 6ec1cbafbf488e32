"""SQL the ORM cannot say: set-based subdivision, diffs and topology checks over whole layers,
and the reads and scratch tables of bulk point routing.

Every statement is parameterised. Table names are written out (boundaries_boundary,
boundaries_boundarypart: Django's names for the models) so each statement reads as it runs.
"""

from collections.abc import Iterable, Sequence

from django.db import connection

# ST_Subdivide in one statement for a whole version: a Python loop would ship every polygon
# through GEOS and back.
SUBDIVIDE_VERSION = """
INSERT INTO boundaries_boundarypart (boundary_id, version_id, geom)
SELECT b.id, b.version_id, ST_Subdivide(b.geom, %(max_vertices)s)
FROM boundaries_boundary b
WHERE b.version_id = %(version_id)s
"""


SUBDIVIDE_BOUNDARY = """
WITH gone AS (DELETE FROM boundaries_boundarypart WHERE boundary_id = %(boundary_id)s)
INSERT INTO boundaries_boundarypart (boundary_id, version_id, geom)
SELECT b.id, b.version_id, ST_Subdivide(b.geom, %(max_vertices)s)
FROM boundaries_boundary b
WHERE b.id = %(boundary_id)s
"""


def subdivide_boundary(*, boundary_id: int, max_vertices: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            SUBDIVIDE_BOUNDARY, {"boundary_id": boundary_id, "max_vertices": max_vertices}
        )
        return cursor.rowcount


def analyze_boundaries() -> None:
    """Refresh the planner's statistics of the boundary tables.

    Measured (bench boundary_import_nyc, lookup_right_after_import): right after an import the
    stale statistics made point lookups pick a bad plan, 22.6 ms p50 instead of 0.6 ms.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE boundaries_layerversion, boundaries_boundary, boundaries_boundarypart"
        )


def subdivide_version(*, version_id: int, max_vertices: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(SUBDIVIDE_VERSION, {"version_id": version_id, "max_vertices": max_vertices})
        return cursor.rowcount


# Compares a candidate version with the active one by code. Areas are measured on the geography
# (square metres on the spheroid), never in degrees.
VERSION_DIFF = """
WITH new AS (
    SELECT code, name, geom FROM boundaries_boundary WHERE version_id = %(new)s
), old AS (
    SELECT code, name, geom FROM boundaries_boundary WHERE version_id = %(old)s
)
SELECT
    coalesce(new.code, old.code) AS code,
    coalesce(new.name, old.name) AS name,
    CASE WHEN old.code IS NULL THEN 'added'
         WHEN new.code IS NULL THEN 'removed'
         ELSE 'kept' END AS change,
    ST_Area(old.geom::geography) AS old_area_m2,
    ST_Area(new.geom::geography) AS new_area_m2,
    CASE WHEN new.code IS NOT NULL AND old.code IS NOT NULL
         THEN ST_Area(ST_SymDifference(new.geom, old.geom)::geography) END AS moved_m2
FROM new FULL OUTER JOIN old ON new.code = old.code
ORDER BY 3, 1
"""


def version_diff_rows(*, new_version_id: int, old_version_id: int) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(VERSION_DIFF, {"new": new_version_id, "old": old_version_id})
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# Overlaps: pairs of boundaries of one version whose shared area is above the tolerance.
# Gaps: holes in the union of the whole layer, i.e. land enclosed by the layer that no boundary
# covers. A real hole (a lake cut out of every boundary) is reported too: the GIS team decides.
OVERLAPS = """
SELECT a.code, b.code, ST_Area(i.geom::geography) AS area_m2,
       ST_Y(ST_PointOnSurface(i.geom)) AS lat, ST_X(ST_PointOnSurface(i.geom)) AS lon
FROM boundaries_boundary a
JOIN boundaries_boundary b
  ON a.version_id = b.version_id AND a.id < b.id AND ST_Intersects(a.geom, b.geom)
CROSS JOIN LATERAL (
    SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS geom
) i
WHERE a.version_id = %(version_id)s
  AND NOT ST_IsEmpty(i.geom)
  AND ST_Area(i.geom::geography) > %(tolerance_m2)s
ORDER BY area_m2 DESC
"""

GAPS = """
WITH layer AS (
    SELECT ST_Union(geom) AS geom FROM boundaries_boundary WHERE version_id = %(version_id)s
), polys AS (
    SELECT (ST_Dump(geom)).geom AS geom FROM layer
), holes AS (
    SELECT ST_MakePolygon(ST_InteriorRingN(p.geom, n)) AS geom
    FROM polys p, generate_series(1, ST_NumInteriorRings(p.geom)) AS n
)
SELECT ST_Area(geom::geography) AS area_m2,
       ST_Y(ST_PointOnSurface(geom)) AS lat, ST_X(ST_PointOnSurface(geom)) AS lon
FROM holes
WHERE ST_Area(geom::geography) > %(tolerance_m2)s
ORDER BY area_m2 DESC
"""


def topology_overlaps(*, version_id: int, tolerance_m2: float) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(OVERLAPS, {"version_id": version_id, "tolerance_m2": tolerance_m2})
        return cursor.fetchall()


def topology_gaps(*, version_id: int, tolerance_m2: float) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(GAPS, {"version_id": version_id, "tolerance_m2": tolerance_m2})
        return cursor.fetchall()


def copy_boundaries(*, version_id: int, rows: Iterable[tuple[str, str, str, bytes]]) -> int:
    """Bulk-write (code, name, attributes JSON, EWKB geometry in 4326) rows of one version.

    COPY instead of INSERTs: a layer like NYC's boroughs carries 83k vertices per file and this
    path is measured against a bare ogr2ogr load (bench ``boundary_import_nyc``).
    """
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(
            "COPY boundaries_boundary (version_id, code, name, attributes, geom) FROM STDIN"
        ) as copy:
            for code, name, attributes, ewkb in rows:
                copy.write_row((version_id, code, name, attributes, ewkb.hex()))
                count += 1
    return count


# A whole layer as GeoJSON in one statement (habit: big collections are serialised by PostGIS).
# Simplification happens in metres: in the UTM zone of the layer's centre, then back to 4326.
LAYER_FEATURE_COLLECTION = """
WITH utm AS (
    SELECT CASE WHEN ST_Y(c) >= 0 THEN 32600 ELSE 32700 END
           + floor((ST_X(c) + 180) / 6)::int + 1 AS srid
    FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c
          FROM boundaries_boundary WHERE version_id = %(version_id)s) centre
), features AS (
    SELECT b.code, json_build_object(
        'type', 'Feature',
        'id', b.id,
        'geometry', ST_AsGeoJSON(
            CASE WHEN %(simplify_m)s > 0
                 THEN ST_Multi(ST_Transform(ST_SimplifyPreserveTopology(
                          ST_Transform(b.geom, utm.srid), %(simplify_m)s), 4326))
                 ELSE b.geom END, 6)::json,
        'properties', json_build_object('code', b.code, 'name', b.name)
    ) AS feature
    FROM boundaries_boundary b CROSS JOIN utm
    WHERE b.version_id = %(version_id)s
      AND (%(west)s::float8 IS NULL
           OR b.geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326))
)
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(feature ORDER BY code), '[]'::json)
)::text
FROM features
"""


def layer_feature_collection(
    *, version_id: int, simplify_m: float, bbox: tuple[float, float, float, float] | None
) -> str:
    west, south, east, north = bbox if bbox else (None, None, None, None)
    with connection.cursor() as cursor:
        cursor.execute(
            LAYER_FEATURE_COLLECTION,
            {
                "version_id": version_id,
                "simplify_m": simplify_m,
                "west": west,
                "south": south,
                "east": east,
                "north": north,
            },
        )
        return cursor.fetchone()[0]


# The pieces bulk routing tests points against (boundaries.selectors.points_places), as WKB:
# only those of active versions whose box meets the points' box, so a city's import does not
# read another city's layers.
ACTIVE_PIECES = """
SELECT bp.boundary_id, ST_AsBinary(bp.geom)
FROM boundaries_boundarypart bp
JOIN boundaries_layerversion v ON v.id = bp.version_id AND v.status = 'active'
WHERE bp.geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)
"""


def active_pieces(*, bbox: tuple[float, float, float, float]) -> list[tuple[int, bytes]]:
    """(boundary id, WKB polygon in 4326) of every active piece meeting ``bbox`` (west, south,
    east, north in degrees)."""
    west, south, east, north = bbox
    with connection.cursor() as cursor:
        cursor.execute(ACTIVE_PIECES, {"west": west, "south": south, "east": east, "north": north})
        return [(boundary_id, bytes(wkb)) for boundary_id, wkb in cursor.fetchall()]


# Places found by bulk routing, for set-based SQL to join: a temporary table, dropped at commit
# (so only within a transaction), named once here for every caller.
PLACE_TABLE = """
DROP TABLE IF EXISTS boundary_place;
CREATE TEMP TABLE boundary_place (
    place_id integer PRIMARY KEY,
    boundary_ids bigint[] NOT NULL
) ON COMMIT DROP
"""


def places_copy(*, places: Sequence[Sequence[int]]) -> int:
    """COPY places (place id = position in ``places``, its boundary ids) into the temporary
    table ``boundary_place``; must run inside a transaction."""
    with connection.cursor() as cursor:
        cursor.execute(PLACE_TABLE)
        with cursor.cursor.copy("COPY boundary_place (place_id, boundary_ids) FROM STDIN") as copy:
            for place_id, boundary_ids in enumerate(places):
                copy.write_row((place_id, list(boundary_ids)))
        cursor.execute("ANALYZE boundary_place")
    return len(places)
