"""nyc_points_agreement: all 855,552 NYC tax-lot points routed at once through the active
BoundaryPart pieces by ``boundaries.selectors.points_places`` (the request importer's bulk
routing), compared with the labels that come with them.

The points are COPYed into a temporary table (straight from the CSV) for the comparisons, and
read with pandas for the routing. ``points_places`` (timed: the value) gives each point its
place, the set of boundaries covering it; per point and layer the sorted distinct codes of its
place's boundaries are then compared with the labels. The baseline is a different engine on
whole polygons: one set-based PostGIS statement joining the points to the whole Boundary
polygons that cover them (ST_Covers), on a sample. Agreement is counted per labelled layer:
exactly one boundary whose code is the label.

Disagreements are investigated: which (label, routed) pairs, whether the label exists in the
layer at all, and how far the point lies from the labelled polygon.
"""

from __future__ import annotations

import time

from .common import (
    BenchError,
    backend_cpu_s,
    data_path,
    django_backend_pid,
    log,
    raw_connection,
    write_result,
)
from .nyc import (
    LABELLED,
    POINTS_CSV,
    POINTS_CSV_COLUMNS,
    POINTS_TOTAL,
    active_versions,
    ensure_nyc_layers,
    rebuild_parts,
)

NAME = "nyc_points_agreement"
EXPECTED = {layer: 100.0 for layer in LABELLED} | {"modzcta": 98.7}
# The whole-polygon baseline takes ~6× longer than the parts (≈ 5 min for all points on the
# 2-core box): it runs on every SAMPLE_EVERY-th point, as do the parts once more, and the
# whole-polygon time for all points is that sample's time × SAMPLE_EVERY. (The parts' own
# sample × SAMPLE_EVERY against their full run shows how well that scales.)
SAMPLE_EVERY = 5


CREATE_POINTS = """
CREATE TEMP TABLE bench_points (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    borough text, block text, lot text, unitsres text,
    latitude float8 NOT NULL, longitude float8 NOT NULL,
    councildist_2023 text, schooldist text, communitydist text, policeprct text, nta text,
    modzcta text, bbl_population_estimate text
)
"""

# The baseline: one set-based PostGIS join of every (sampled) point with the whole polygons.
ROUTE = """
CREATE TEMP TABLE {target} AS
SELECT p.id AS point_id, l.slug AS layer,
       array_agg(DISTINCT b.code::text ORDER BY b.code::text) AS codes
FROM bench_points p
JOIN {join}
JOIN boundaries_layerversion v ON v.id = {alias}.version_id AND v.status = 'active'
JOIN boundaries_layer l ON l.id = v.layer_id{where}
GROUP BY p.id, l.slug
"""
JOIN_WHOLE = """boundaries_boundary b
  ON ST_Covers(b.geom, ST_SetSRID(ST_MakePoint(p.longitude, p.latitude), 4326))"""

# Labels as the importer stores codes: text, "12.0" -> "12".
LABELS = (
    "(VALUES "
    + ", ".join(f"('{c}', regexp_replace(btrim(p.{c}), '\\.0+$', ''))" for c in LABELLED)
    + ") AS lab(layer, label)"
)

AGREEMENT = f"""
SELECT lab.layer,
       count(*) AS points,
       count(*) FILTER (WHERE r.codes = ARRAY[lab.label]) AS agree,
       count(*) FILTER (WHERE r.codes IS NULL) AS no_match,
       count(*) FILTER (WHERE cardinality(r.codes) > 1) AS multiple,
       count(*) FILTER (WHERE cardinality(r.codes) > 1 AND lab.label = ANY(r.codes))
           AS multiple_including_label,
       count(*) FILTER (WHERE cardinality(r.codes) = 1 AND r.codes[1] <> lab.label)
           AS one_other_boundary,
       count(*) FILTER (WHERE lab.label = '') AS empty_label
FROM bench_points p
CROSS JOIN LATERAL {LABELS}
LEFT JOIN routed_parts r ON r.point_id = p.id AND r.layer = lab.layer
GROUP BY lab.layer
"""

# points_places' answer, from the tables _route_parts fills: the place of each point, and per
# place and layer the sorted distinct codes (as the baseline aggregates them).
ROUTED_PARTS = """
CREATE TEMP TABLE place_codes AS
SELECT pb.place_id, l.slug AS layer,
       array_agg(DISTINCT b.code::text ORDER BY b.code::text) AS codes
FROM place_boundaries pb
CROSS JOIN LATERAL unnest(pb.boundary_ids) AS u(boundary_id)
JOIN boundaries_boundary b ON b.id = u.boundary_id
JOIN boundaries_layerversion v ON v.id = b.version_id
JOIN boundaries_layer l ON l.id = v.layer_id
GROUP BY pb.place_id, l.slug;
CREATE INDEX ON place_codes (place_id, layer);
ANALYZE point_place;
ANALYZE place_codes;
CREATE TEMP VIEW routed_parts AS
SELECT pp.point_id, pc.layer, pc.codes
FROM point_place pp JOIN place_codes pc ON pc.place_id = pp.place_id
"""

# Points routed differently through the parts and through whole polygons.
PARTS_VS_WHOLE = """
SELECT count(*)
FROM (SELECT * FROM routed_parts WHERE point_id %% %(every)s = 0) a
FULL JOIN routed_whole b USING (point_id, layer)
WHERE a.codes IS DISTINCT FROM b.codes
"""

DISAGREEING = f"""
CREATE TEMP TABLE disagree AS
SELECT p.id AS point_id, lab.layer, lab.label, r.codes,
       ST_SetSRID(ST_MakePoint(p.longitude, p.latitude), 4326) AS pt
FROM bench_points p
CROSS JOIN LATERAL {LABELS}
LEFT JOIN routed_parts r ON r.point_id = p.id AND r.layer = lab.layer
WHERE r.codes IS DISTINCT FROM ARRAY[lab.label]
"""

TOP_PAIRS = """
SELECT layer, label, coalesce(array_to_string(codes, '|'), '(none)') AS routed, count(*) AS n
FROM disagree GROUP BY 1, 2, 3 ORDER BY layer, n DESC
"""

# Is the label a code of the active version at all? How far (metres, in EPSG:2263 feet * 0.3048)
# is the point from the polygon with that code?
DISTANCES = """
WITH active AS (
    SELECT l.slug AS layer, b.code, ST_Transform(b.geom, 2263) AS g
    FROM boundaries_boundary b
    JOIN boundaries_layerversion v ON v.id = b.version_id AND v.status = 'active'
    JOIN boundaries_layer l ON l.id = v.layer_id
    WHERE l.slug IN (SELECT DISTINCT layer FROM disagree)
)
SELECT d.layer,
       CASE WHEN a.code IS NULL THEN 'label is not a code of the layer'
            WHEN ST_Distance(a.g, ST_Transform(d.pt, 2263)) * 0.3048 < 1 THEN 'a) < 1 m'
            WHEN ST_Distance(a.g, ST_Transform(d.pt, 2263)) * 0.3048 < 10 THEN 'b) 1-10 m'
            WHEN ST_Distance(a.g, ST_Transform(d.pt, 2263)) * 0.3048 < 100 THEN 'c) 10-100 m'
            WHEN ST_Distance(a.g, ST_Transform(d.pt, 2263)) * 0.3048 < 1000 THEN 'd) 100 m-1 km'
            ELSE 'e) > 1 km' END AS distance_to_labelled_polygon,
       count(*) AS n
FROM disagree d
LEFT JOIN active a ON a.layer = d.layer AND a.code = d.label
GROUP BY 1, 2 ORDER BY 1, 2
"""

# Labels used by the points that the layer has no boundary for, and codes of the layer that no
# point is labelled with.
MISSING_CODES = f"""
WITH used AS (
    SELECT lab.layer, lab.label, count(*) AS n
    FROM bench_points p CROSS JOIN LATERAL {LABELS} GROUP BY 1, 2
), codes AS (
    SELECT l.slug AS layer, b.code
    FROM boundaries_boundary b
    JOIN boundaries_layerversion v ON v.id = b.version_id AND v.status = 'active'
    JOIN boundaries_layer l ON l.id = v.layer_id
)
SELECT 'label_without_boundary' AS kind, u.layer, u.label, u.n
FROM used u LEFT JOIN codes c ON c.layer = u.layer AND c.code = u.label WHERE c.code IS NULL
UNION ALL
SELECT 'boundary_without_label', c.layer, c.code, 0
FROM codes c LEFT JOIN used u ON u.layer = c.layer AND u.label = c.code
WHERE u.label IS NULL AND c.layer IN (SELECT layer FROM used)
ORDER BY 1, 2, 4 DESC, 3
"""

NO_MATCH_EXAMPLES = """
SELECT d.layer, d.label, round(ST_Y(d.pt)::numeric, 7), round(ST_X(d.pt)::numeric, 7)
FROM disagree d WHERE d.codes IS NULL ORDER BY d.layer, d.point_id
"""

BOROUGH = """
SELECT count(*) FILTER (WHERE r.codes = ARRAY[CASE p.borough WHEN 'MN' THEN 'Manhattan'
           WHEN 'BX' THEN 'The Bronx' WHEN 'BK' THEN 'Brooklyn' WHEN 'QN' THEN 'Queens'
           WHEN 'SI' THEN 'Staten Island' END]) AS agree,
       count(*) FILTER (WHERE r.codes IS NULL) AS no_match,
       count(*) FILTER (WHERE cardinality(r.codes) > 1) AS multiple,
       count(*) AS points
FROM bench_points p
LEFT JOIN routed_parts r ON r.point_id = p.id AND r.layer = 'borough'
"""


def _load_points(conn) -> float:  # type: ignore[no-untyped-def]
    path = data_path(*POINTS_CSV)
    with path.open("rb") as fh:
        header = fh.readline().decode().strip().split(",")
    if header != POINTS_CSV_COLUMNS:
        raise BenchError(f"{path}: unexpected columns {header}")
    t0 = time.perf_counter()
    conn.execute(CREATE_POINTS)
    with (
        path.open("rb") as fh,
        conn.cursor().copy(
            f"COPY bench_points ({', '.join(POINTS_CSV_COLUMNS)}) FROM STDIN "
            "WITH (FORMAT csv, HEADER true)"
        ) as copy,
    ):
        while block := fh.read(1 << 20):
            copy.write(block)
    conn.execute("ANALYZE bench_points")
    return time.perf_counter() - t0


def _route_parts(conn) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    """points_places over every point of the CSV (timed), then its answer written to ``conn``
    (temporary tables point_place, place_boundaries; the view routed_parts)."""
    import numpy as np
    import pandas as pd

    from boundaries.selectors import points_places

    df = pd.read_csv(data_path(*POINTS_CSV), usecols=["latitude", "longitude"])
    lons, lats = df["longitude"].to_numpy(), df["latitude"].to_numpy()
    backend = django_backend_pid()
    cpu0 = time.process_time(), backend_cpu_s(backend)
    t0 = time.perf_counter()
    found = points_places(lons=lons, lats=lats)
    elapsed = time.perf_counter() - t0
    cpu = {
        "client_s": round(time.process_time() - cpu0[0], 3),
        "postgres_s": round(backend_cpu_s(backend) - cpu0[1], 3),
    }
    conn.execute("CREATE TEMP TABLE point_place (point_id bigint, place_id integer)")
    with conn.cursor().copy("COPY point_place FROM STDIN (FORMAT binary)") as copy:
        copy.set_types(["int8", "int4"])
        for row in zip(range(1, len(lons) + 1), found.of_point.tolist(), strict=True):
            copy.write_row(row)
    conn.execute("CREATE TEMP TABLE place_boundaries (place_id integer, boundary_ids bigint[])")
    with conn.cursor().copy("COPY place_boundaries FROM STDIN") as copy:
        for row in enumerate(found.places):
            copy.write_row((row[0], list(row[1])))
    conn.execute(ROUTED_PARTS)
    info = {
        "places": len(found.places),
        "largest_place_points": int(np.bincount(found.of_point).max()),
        "cpu": cpu,
    }
    return elapsed, info


def _route(conn, target: str, join: str, alias: str, *, every: int = 1) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Run the baseline statement into ``target``; ``every`` > 1 routes only every n-th point."""
    conn.execute(f"DROP TABLE IF EXISTS {target}")
    where = f"\nWHERE p.id % {int(every)} = 0" if every > 1 else ""
    t0 = time.perf_counter()
    cur = conn.execute(ROUTE.format(target=target, join=join, alias=alias, where=where))
    elapsed = time.perf_counter() - t0
    return elapsed, cur.rowcount


def _plan(conn, join: str, alias: str) -> str:  # type: ignore[no-untyped-def]
    sql = ROUTE.format(target="x", join=join, alias=alias, where="").split("AS\n", 1)[1]
    return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())


def run() -> dict:
    from django.conf import settings

    ensure_nyc_layers()
    versions = active_versions()
    parts = rebuild_parts(settings.GEO311_SUBDIVIDE_MAX_VERTICES)
    with raw_connection() as conn:
        log("loading the tax-lot points (COPY)")
        load_s = _load_points(conn)
        n_points = conn.execute("SELECT count(*) FROM bench_points").fetchone()[0]
        log(f"{n_points} points loaded in {load_s:.1f} s; routing through the parts")
        parts_s, parts_info = _route_parts(conn)
        parts_rows = conn.execute("SELECT count(*) FROM routed_parts").fetchone()[0]
        log(
            f"parts: {parts_rows} (point, layer) rows, points_places {parts_s:.1f} s; "
            f"every {SAMPLE_EVERY}th point through whole polygons"
        )
        plan_whole = _plan(conn, JOIN_WHOLE, "b")
        whole_s, whole_rows = _route(conn, "routed_whole", JOIN_WHOLE, "b", every=SAMPLE_EVERY)
        sample_points_n = conn.execute(
            f"SELECT count(*) FROM bench_points WHERE id % {SAMPLE_EVERY} = 0"
        ).fetchone()[0]
        log(f"sample of {sample_points_n} points: whole polygons {whole_s:.1f} s")
        differ = conn.execute(PARTS_VS_WHOLE, {"every": SAMPLE_EVERY}).fetchone()[0]
        whole_all_s = whole_s * SAMPLE_EVERY

        per_layer = {}
        for layer, points, agree, no_match, multiple, multi_incl, other, empty in conn.execute(
            AGREEMENT
        ).fetchall():
            per_layer[layer] = {
                "points": points,
                "agreement_pct": round(100.0 * agree / points, 3),
                "agree": agree,
                "disagree": points - agree,
                "no_match": no_match,
                "multiple_matches": multiple,
                "multiple_matches_including_label": multi_incl,
                "one_other_boundary": other,
                "empty_label": empty,
                "expected_pct": EXPECTED[layer],
            }
        per_layer = {k: per_layer[k] for k in LABELLED}

        conn.execute(DISAGREEING)
        pairs: dict[str, list] = {}
        for layer, label, routed, n in conn.execute(TOP_PAIRS).fetchall():
            if len(pairs.setdefault(layer, [])) < 15:
                pairs[layer].append({"label": label, "routed": routed, "points": n})
        distances: dict[str, dict] = {}
        for layer, bucket, n in conn.execute(DISTANCES).fetchall():
            distances.setdefault(layer, {})[bucket] = n
        missing: dict[str, dict] = {}
        for kind, layer, code, n in conn.execute(MISSING_CODES).fetchall():
            entry = missing.setdefault(layer, {}).setdefault(kind, [])
            entry.append({"code": code, "points": n} if kind == "label_without_boundary" else code)
        no_match_examples: dict[str, list] = {}
        for layer, label, lat, lon in conn.execute(NO_MATCH_EXAMPLES).fetchall():
            if len(no_match_examples.setdefault(layer, [])) < 10:
                no_match_examples[layer].append(
                    {"label": label, "lat": float(lat), "lon": float(lon)}
                )
        b_agree, b_none, b_multi, b_points = conn.execute(BOROUGH).fetchone()

    for layer, a in per_layer.items():
        a["disagreement_top_pairs"] = pairs.get(layer, [])
        a["disagreement_distance_to_labelled_polygon"] = distances.get(layer, {})
        a["codes"] = missing.get(layer, {})
        if layer in no_match_examples:
            a["no_match_examples"] = no_match_examples[layer]
    pct = {k: v["agreement_pct"] for k, v in per_layer.items()}
    goal_met = (
        all(pct[k] == 100.0 for k in LABELLED if k != "modzcta")
        and abs(pct["modzcta"] - 98.7) < 0.5
    )
    details = {
        "points": n_points,
        "points_expected": POINTS_TOTAL,
        "agreement_pct": pct,
        "per_layer": per_layer,
        "borough_check": {
            "mapping": "BK/BX/MN/QN/SI -> Brooklyn/The Bronx/Manhattan/Queens/Staten Island",
            "agreement_pct": round(100.0 * b_agree / b_points, 3),
            "no_match": b_none,
            "multiple_matches": b_multi,
        },
        "bulk_lookup_parts_s": round(parts_s, 3),
        "bulk_lookup_parts_cpu_s": parts_info["cpu"],
        "places": parts_info["places"],
        "largest_place_points": parts_info["largest_place_points"],
        "sample_every": SAMPLE_EVERY,
        "sample_points": sample_points_n,
        "sample_whole_polygons_s": round(whole_s, 3),
        "whole_polygons_all_points_estimate_s": round(whole_all_s, 3),
        "routed_rows_parts": parts_rows,
        "routed_rows_whole_sample": whole_rows,
        "parts_vs_whole_differences_in_sample": differ,
        "points_per_second_parts": round(n_points / parts_s),
        "copy_points_s": round(load_s, 3),
        "subdivide_max_vertices": settings.GEO311_SUBDIVIDE_MAX_VERTICES,
        "parts": parts,
        "active_versions": versions,
        "plan_whole": plan_whole,
        "baseline_sql": ROUTE.format(
            target="routed_whole", join=JOIN_WHOLE, alias="b", where=""
        ).strip(),
        "notes": [
            "value = wall time of boundaries.selectors.points_places over all points and all "
            "active layers (pieces read, STRtree, point-in-polygon, places); writing its answer "
            "for the comparison and the comparison with labels run afterwards.",
            "baseline = PostGIS ST_Covers against whole polygons on every "
            f"{SAMPLE_EVERY}th point, × {SAMPLE_EVERY}: another engine and other geometry, "
            "so parts_vs_whole_differences_in_sample also checks points_places.",
            "agreement = exactly one boundary of the layer covers the point and its code is the "
            "label; points on a shared edge (two boundaries) count as disagreeing.",
        ],
        "goal_met": goal_met,
    }
    return write_result(
        name=NAME,
        value=round(parts_s, 3),
        unit="s",
        baseline=(
            f"PostGIS ST_Covers join against whole Boundary polygons (no parts), timed on "
            f"every {SAMPLE_EVERY}th point × {SAMPLE_EVERY}"
        ),
        baseline_value=round(whole_all_s, 3),
        goal="agreement 100% per layer (modzcta ≈ 98.7%)",
        details=details,
    )
