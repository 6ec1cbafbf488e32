"""bulk_route_nyc: all 855,552 NYC tax-lot points routed through the 7 NYC layers into a PostGIS
table by the app's bulk routing, against the pipeline a GIS analyst would use instead.

Both sides start from the same CSV file and the same active boundaries in the bench database,
and both end with the same table in PostGIS: one row per point of the file (``point_id`` = its
row number, 1-based, header excluded), its point (EPSG:4326) and its code in each of the 7
layers (text; NULL when it lies in no boundary of the layer; the smallest code when it lies in
several, i.e. on a shared edge).

- **ours** (one transaction, Django's connection): the two coordinate columns read with
  pandas, then ``boundaries.selectors.points_places`` — the function the request importer
  routes with: the active BoundaryPart pieces around the points read once, an STRtree over
  them, GEOS' prepared point-in-polygon test per candidate, points grouped into "places" (the
  set of boundaries they fall in) — ``boundaries.sql.places_copy`` (the places into the
  temporary table ``boundary_place``), a binary COPY of (point_id, lon, lat, place_id), then
  one ``CREATE TABLE ... AS`` that pivots each place's boundaries into the 7 code columns and
  joins the points to their place.
- **baseline** (geopandas): ``pd.read_csv`` (latitude/longitude only), ``points_from_xy``,
  ``gpd.read_postgis`` of the active boundaries of the 7 layers (whole polygons, as stored),
  ``gpd.sjoin(points, layer, how="left", predicate="within")`` per layer (geopandas turns
  ``within`` into a ``contains`` query with prepared polygons against an STRtree of the points,
  its fastest form), the smallest code per point, then the table written to PostGIS.
  ``GeoDataFrame.to_postgis`` needs SQLAlchemy + GeoAlchemy2, which are not installed here, so
  the write does what ``to_postgis`` does internally (EWKB hex geometries, the frame as CSV,
  ``COPY ... FROM STDIN``) through psycopg.

Runs alternate (ours, baseline, ours, ...) so both see the same background load; the value is
the median of ours, the baseline value the median of the baseline; ratio = ours / baseline
(goal ≤ 1.0). Both tables are then compared row by row (same points, same codes).
"""

from __future__ import annotations

import io
import time
import warnings

from . import common
from .common import BenchError, data_path, log, median, write_result
from .nyc import (
    POINTS_CSV,
    POINTS_TOTAL,
    active_versions,
    ensure_nyc_layers,
    layer_slugs,
)

NAME = "bulk_route_nyc"
RUNS = 3
OURS_TABLE = "bench_route_ours"
GPD_TABLE = "bench_route_gpd"


# The routed points, as the importer stages its rows (binary COPY): point_id = row number.
POINTS = """
DROP TABLE IF EXISTS bench_route_point;
CREATE TEMP TABLE bench_route_point (
    point_id integer NOT NULL, lon float8 NOT NULL, lat float8 NOT NULL, place_id integer NOT NULL
) ON COMMIT DROP
"""


def _wide_columns(slugs: list[str]) -> str:
    return ", ".join(f'"{s}" text' for s in slugs)


def _pivot(slugs: list[str]) -> str:
    """The result table: each place's boundaries (boundary_place, from places_copy) pivoted into
    one code per layer (a thousand places), then every point joined to its place."""
    cols = ",\n           ".join(
        f"min(b.code::text) FILTER (WHERE l.slug = '{s}') AS \"{s}\"" for s in slugs
    )
    picked = ", ".join(f'pv."{s}"' for s in slugs)
    return f"""
CREATE TABLE {OURS_TABLE} AS
WITH pivot AS (
    SELECT pp.place_id,
           {cols}
    FROM boundary_place pp
    LEFT JOIN LATERAL unnest(pp.boundary_ids) AS u(boundary_id) ON true
    LEFT JOIN boundaries_boundary b ON b.id = u.boundary_id
    LEFT JOIN boundaries_layerversion v ON v.id = b.version_id
    LEFT JOIN boundaries_layer l ON l.id = v.layer_id
    GROUP BY pp.place_id
)
SELECT p.point_id, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326) AS geom, {picked}
FROM bench_route_point p
JOIN pivot pv ON pv.place_id = p.place_id
"""


def _drop_results() -> None:
    with common.raw_connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {OURS_TABLE}, {GPD_TABLE}")


def run_ours(slugs: list[str]) -> dict:
    """The app's bulk routing, CSV to result table; seconds per phase."""
    import numpy as np
    import pandas as pd
    from django.db import connection, transaction

    from boundaries import sql as boundaries_sql
    from boundaries.selectors import points_places

    path = data_path(*POINTS_CSV)
    phases: dict[str, float] = {}
    backend = common.django_backend_pid()
    cpu0 = time.process_time(), common.backend_cpu_s(backend)
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = round(now - t, 3)
        t = now

    df = pd.read_csv(path, usecols=["latitude", "longitude"])
    lons, lats = df["longitude"].to_numpy(), df["latitude"].to_numpy()
    lap("read_csv")
    with transaction.atomic(), connection.cursor() as cursor:
        found = points_places(lons=lons, lats=lats)
        lap("points_places")
        boundaries_sql.places_copy(places=found.places)
        lap("places_copy")
        cursor.execute(POINTS)
        with cursor.cursor.copy("COPY bench_route_point FROM STDIN (FORMAT binary)") as copy:
            copy.set_types(["int4", "float8", "float8", "int4"])
            rows = zip(
                range(1, len(lons) + 1),
                lons.tolist(),
                lats.tolist(),
                found.of_point.tolist(),
                strict=True,
            )
            for row in rows:
                copy.write_row(row)
        lap("copy_points")
        cursor.execute("SET LOCAL jit = off")  # JIT would compile the pivot for longer than it runs
        cursor.execute(_pivot(slugs))
        lap("write_table")
    lap("commit")
    phases["total"] = round(time.perf_counter() - t0, 3)
    phases |= _cpu(cpu0, backend)
    phases["places"] = len(found.places)
    phases["largest_place_points"] = int(np.bincount(found.of_point).max())
    return phases


def _cpu(start: tuple[float, float], backend: int) -> dict:
    client = time.process_time() - start[0]
    server = common.backend_cpu_s(backend) - start[1]
    return {
        "cpu_client_s": round(client, 3),
        "cpu_postgres_s": round(server, 3),
        "cpu_total_s": round(client + server, 3),
    }


def run_geopandas(slugs: list[str]) -> dict:
    """The analyst's pipeline, CSV to result table; seconds per phase."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    path = data_path(*POINTS_CSV)
    phases: dict[str, float] = {}
    client0 = time.process_time()
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = round(now - t, 3)
        t = now

    df = pd.read_csv(path, usecols=["latitude", "longitude"])
    points = gpd.GeoDataFrame(
        index=pd.RangeIndex(1, len(df) + 1, name="point_id"),
        geometry=gpd.points_from_xy(df["longitude"].to_numpy(), df["latitude"].to_numpy()),
        crs=4326,
    )
    lap("read_csv")
    conn = common.raw_connection()
    backend = conn.info.backend_pid
    cpu0 = client0, common.backend_cpu_s(backend)  # the backend's own start is negligible
    with warnings.catch_warnings():
        # pandas warns about DBAPI connections other than sqlite3; psycopg works.
        warnings.simplefilter("ignore", UserWarning)
        layers = gpd.read_postgis(
            "SELECT l.slug, b.code::text AS code, b.geom "
            "FROM boundaries_boundary b "
            "JOIN boundaries_layerversion v ON v.id = b.version_id AND v.status = 'active' "
            "JOIN boundaries_layer l ON l.id = v.layer_id "
            "WHERE l.slug = ANY (%(slugs)s)",
            conn,
            geom_col="geom",
            params={"slugs": slugs},
        )
    lap("read_layers")
    out = pd.DataFrame(index=points.index)
    for slug in slugs:
        layer = layers.loc[layers["slug"] == slug, ["code", "geom"]]
        joined = gpd.sjoin(points, layer, how="left", predicate="within")
        if not joined.index.is_unique:  # a point in several boundaries: keep the smallest code
            joined = joined.sort_values("code", kind="stable")
            joined = joined[~joined.index.duplicated()]
        out[slug] = joined["code"]
        lap(f"sjoin_{slug}")
    out.insert(0, "geom", shapely.to_wkb(points.geometry.array, hex=True, include_srid=True))
    buf = io.StringIO()
    out.to_csv(buf, header=False)
    lap("frame_to_csv")
    with conn.transaction():
        conn.execute(
            f"CREATE TABLE {GPD_TABLE} (point_id bigint, geom geometry(Point, 4326), "
            f"{_wide_columns(slugs)})"
        )
        with conn.cursor().copy(f"COPY {GPD_TABLE} FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
    lap("copy_to_postgis")
    phases["total"] = round(time.perf_counter() - t0, 3)
    phases |= _cpu(cpu0, backend)
    conn.close()
    phases["rows"] = len(out)
    return phases


def compare(slugs: list[str]) -> dict:
    """Both result tables, row by row: same point ids, same points, same codes."""
    diff_cols = ", ".join(
        f'count(*) FILTER (WHERE a."{s}" IS DISTINCT FROM b."{s}") AS "{s}"' for s in slugs
    )
    null_cols = ", ".join(f'count(*) FILTER (WHERE a."{s}" IS NULL) AS "{s}"' for s in slugs)
    with common.raw_connection() as conn:
        # Statistics first: without them the planner nests loops over 855,552 × 855,552 rows.
        conn.execute(f"ANALYZE {OURS_TABLE}")
        conn.execute(f"ANALYZE {GPD_TABLE}")
        ours, theirs = (
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (OURS_TABLE, GPD_TABLE)
        )
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE a.point_id IS NULL) AS only_baseline, "
            f"count(*) FILTER (WHERE b.point_id IS NULL) AS only_ours, "
            f"count(*) FILTER (WHERE a.point_id IS NOT NULL AND b.point_id IS NOT NULL "
            f"AND NOT ST_Equals(a.geom, b.geom)) AS other_point, {diff_cols} "
            f"FROM {OURS_TABLE} a FULL JOIN {GPD_TABLE} b USING (point_id)"
        ).fetchone()
        nulls = conn.execute(f"SELECT {null_cols} FROM {OURS_TABLE} a").fetchone()
        examples = conn.execute(
            "SELECT point_id, ST_AsText(a.geom), "
            + ", ".join(f'a."{s}", b."{s}"' for s in slugs)
            + f" FROM {OURS_TABLE} a JOIN {GPD_TABLE} b USING (point_id) WHERE "
            + " OR ".join(f'a."{s}" IS DISTINCT FROM b."{s}"' for s in slugs)
            + " ORDER BY point_id LIMIT 10"
        ).fetchall()
    differing = dict(zip(slugs, row[3:], strict=True))
    return {
        "rows_ours": ours,
        "rows_baseline": theirs,
        "only_in_ours": row[1],
        "only_in_baseline": row[0],
        "different_point": row[2],
        "different_code_per_layer": differing,
        "no_boundary_per_layer_ours": dict(zip(slugs, nulls, strict=True)),
        "examples": [
            {"point_id": e[0], "point": e[1]}
            | {s: {"ours": e[2 + 2 * i], "baseline": e[3 + 2 * i]} for i, s in enumerate(slugs)}
            for e in examples
        ],
        "agree": ours == theirs == POINTS_TOTAL
        and not any(row[:3])
        and not any(differing.values()),
    }


def _context() -> dict:
    with common.raw_connection() as conn:
        parts, layers = conn.execute(
            "SELECT count(*), count(DISTINCT v.layer_id) FROM boundaries_boundarypart bp "
            "JOIN boundaries_layerversion v ON v.id = bp.version_id AND v.status = 'active'"
        ).fetchone()
        slugs = [
            r[0]
            for r in conn.execute(
                "SELECT l.slug FROM boundaries_layerversion v JOIN boundaries_layer l "
                "ON l.id = v.layer_id WHERE v.status = 'active' ORDER BY l.slug"
            ).fetchall()
        ]
    return {"active_parts": parts, "active_layers": layers, "active_layer_slugs": slugs}


def run() -> dict:
    import geopandas
    import shapely

    ensure_nyc_layers_kept()
    slugs = layer_slugs()
    missing = set(slugs) - set(active_versions())
    if missing:
        raise BenchError(f"NYC layers not active: {sorted(missing)}")
    context = _context()
    ours_runs: list[dict] = []
    gpd_runs: list[dict] = []
    for i in range(RUNS):
        _drop_results()
        log(f"run {i + 1}/{RUNS}: ours (boundaries.selectors.points_places)")
        ours_runs.append(run_ours(slugs))
        log(f"  ours {ours_runs[-1]}")
        log(f"run {i + 1}/{RUNS}: geopandas sjoin pipeline")
        gpd_runs.append(run_geopandas(slugs))
        log(f"  geopandas {gpd_runs[-1]}")
    check = compare(slugs)
    log(f"agreement: {check['agree']}; differing codes {check['different_code_per_layer']}")
    ours = median([r["total"] for r in ours_runs])
    theirs = median([r["total"] for r in gpd_runs])
    ratio = ours / theirs
    ours_cpu = median([r["cpu_total_s"] for r in ours_runs])
    theirs_cpu = median([r["cpu_total_s"] for r in gpd_runs])
    details = {
        "points": POINTS_TOTAL,
        "runs": RUNS,
        "ours_runs_s": [r["total"] for r in ours_runs],
        "baseline_runs_s": [r["total"] for r in gpd_runs],
        "ours_points_places_s": [r["points_places"] for r in ours_runs],
        "ours_cpu_s_median": ours_cpu,
        "baseline_cpu_s_median": theirs_cpu,
        "cpu_ratio": round(ours_cpu / theirs_cpu, 4),
        "ours_phases_s": ours_runs,
        "baseline_phases_s": gpd_runs,
        "ratio": round(ratio, 4),
        "outputs": check,
        "layers": slugs,
        **context,
        "geopandas": geopandas.__version__,
        "shapely": shapely.__version__,
        "shapely_geos": shapely.geos_version_string,
        "to_postgis": "not used: SQLAlchemy and GeoAlchemy2 are not installed; the baseline "
        "writes as to_postgis does (EWKB hex, CSV, COPY FROM STDIN) through psycopg",
        "notes": [
            "ours = pd.read_csv (2 columns) + boundaries.selectors.points_places (what the "
            "request importer routes with) + boundaries.sql.places_copy + a binary COPY of "
            "(point_id, lon, lat, place_id) + one CREATE TABLE AS pivoting places into 7 code "
            "columns; one transaction through Django's connection.",
            "baseline = pd.read_csv (2 columns) + points_from_xy + gpd.read_postgis (active "
            "boundaries of the 7 layers) + gpd.sjoin(how='left', predicate='within') per layer "
            "+ min code per point + COPY of the frame (what to_postgis does).",
            "points_places reads the active pieces whose box meets the points' box: Chicago "
            "layers, when loaded, are not read for NYC points (see active_layer_slugs).",
            "Both sides single-threaded. cpu_* = the client process's CPU time + that of its "
            "PostgreSQL backend (from /proc), for runs on a box shared with other work.",
        ],
        "goal_met": bool(ratio <= 1.0 and check["agree"]),
    }
    return write_result(
        name=NAME,
        value=round(ours, 2),
        unit="s",
        baseline="geopandas: read_csv + read_postgis + sjoin per layer + write to PostGIS",
        baseline_value=round(theirs, 2),
        ratio=ratio,
        goal="time ratio ≤ 1.0 with the same table in PostGIS",
        details=details,
    )


def ensure_nyc_layers_kept() -> dict[str, int]:
    """The 7 NYC layers active; other layers (Chicago's, for open311_post) are left alone when
    the NYC ones are already there (``ensure_nyc_layers`` would wipe and re-import)."""
    if set(layer_slugs()) <= set(active_versions()):
        return active_versions()
    return ensure_nyc_layers()
