"""subdivide_piece_size: which ST_Subdivide max_vertices makes point lookups fastest.

For every size the parts of the 7 NYC layers are rebuilt (TRUNCATE, ``subdivide_version`` per
version, VACUUM ANALYZE), then the same random tax-lot points are looked up as bare SQL with the
exact query ``boundaries.selectors.boundaries_containing`` makes (``sql_with_params()``, sent
through psycopg, prepared, with custom plans: see ``bench.sqltime``). "none" is the same lookup
against the whole Boundary polygons with no parts at all: the baseline. Alongside, the same
WHERE selecting only id, layer slug and code ("ids_only") shows the cost of finding the
boundaries alone.

The parts are rebuilt at ``settings.GEO311_SUBDIVIDE_MAX_VERTICES`` at the end.
"""

from __future__ import annotations

import time

from .common import latency_stats, log, median, raw_connection, write_result
from .nyc import (
    ensure_nyc_layers,
    ids_only,
    nyc_versions,
    rebuild_parts,
    sample_points,
    selector_lookup_sql,
    whole_polygon_lookup_sql,
)
from .sqltime import server_times, time_queries

NAME = "subdivide_piece_size"
SIZES: list[int | None] = [None, 16, 32, 64, 128, 256, 512, 1024]
POINTS = 5_000
WARMUP = 200
EXPLAINED = 300  # points per round also run under EXPLAIN ANALYZE for server-side times


def _label(size: int | None) -> str:
    return "none" if size is None else str(size)


def _part_shape() -> dict:
    """Parts of the NYC layers: count and vertices; size of the whole parts table."""
    with raw_connection() as conn:
        row = conn.execute(
            "SELECT count(*), avg(ST_NPoints(geom)), max(ST_NPoints(geom)), "
            "pg_total_relation_size('boundaries_boundarypart') FROM boundaries_boundarypart "
            "WHERE version_id = ANY(%s)",
            (list(nyc_versions().values()),),
        ).fetchone()
    return {
        "parts": row[0],
        "avg_vertices": round(float(row[1] or 0), 1),
        "max_vertices_seen": row[2] or 0,
        "table_bytes_with_indexes": row[3],
    }


def run() -> dict:
    from django.conf import settings

    ensure_nyc_layers()
    points = sample_points(POINTS + WARMUP, seed=2023)
    warm, points = points[:WARMUP], points[WARMUP:]
    # Two rounds, sizes ascending then descending, each on its own half of the points: load
    # that drifts over the minutes of the sweep then hits small and large sizes alike.
    halves = [points[: len(points) // 2], points[len(points) // 2 :]]
    rounds = [SIZES, list(reversed(SIZES))]
    seconds: dict[str, dict[str, list[float]]] = {}
    answers: dict[str, dict[str, list[frozenset]]] = {}
    per_size: dict[str, dict] = {}
    try:
        for n, (order, half) in enumerate(zip(rounds, halves, strict=True), start=1):
            for size in order:
                label = _label(size)
                t0 = time.perf_counter()
                count = rebuild_parts(size)
                rebuild_s = time.perf_counter() - t0
                query = whole_polygon_lookup_sql() if size is None else selector_lookup_sql()
                timed = time_queries(
                    {"selector_query": query, "ids_only": ids_only(query)}, half, warmup=warm
                )
                planning, execution = server_times(query, half[:EXPLAINED], warmup=warm[:20])
                entry = per_size.setdefault(label, {**_part_shape(), "rebuild_s": []})
                seconds.setdefault(label, {}).setdefault("server_planning", []).extend(planning)
                seconds.setdefault(label, {}).setdefault("server_execution", []).extend(execution)
                if size is None:
                    entry["parts"] = 0
                entry["rebuild_s"].append(round(rebuild_s, 3))
                for variant, t in timed.items():
                    seconds.setdefault(label, {}).setdefault(variant, []).extend(t.seconds)
                    answers.setdefault(label, {}).setdefault(variant, []).extend(t.answers)
                    entry.setdefault(f"round_p50_us_{variant}", []).append(
                        latency_stats(t.seconds, scale=1e6, nd=1)["p50"]
                    )
                log(
                    f"round {n}, max_vertices={label}: {count} parts, rebuilt in "
                    f"{rebuild_s:.2f} s, p50 {entry['round_p50_us_selector_query'][-1]} µs "
                    f"(ids only {entry['round_p50_us_ids_only'][-1]} µs)"
                )
    finally:
        current = settings.GEO311_SUBDIVIDE_MAX_VERTICES
        log(f"restoring parts at GEO311_SUBDIVIDE_MAX_VERTICES={current}")
        rebuild_parts(current)

    # Both rounds' points in one order for every size: round 1's half, then round 2's.
    reference = answers["none"]["selector_query"]
    for label in [_label(x) for x in SIZES]:
        entry = per_size[label]
        sel = answers[label]["selector_query"]
        entry["selector_query"] = latency_stats(seconds[label]["selector_query"], scale=1e6, nd=1)
        entry["ids_only"] = latency_stats(seconds[label]["ids_only"], scale=1e6, nd=1)
        for what in ("server_planning", "server_execution"):
            entry[f"{what}_us"] = latency_stats(seconds[label][what], scale=1e6, nd=1)
        entry["answers_differing_from_whole_polygons"] = sum(
            a != b for a, b in zip(sel, reference, strict=True)
        )
        entry["selector_vs_ids_only_mismatches"] = sum(
            a != b for a, b in zip(sel, answers[label]["ids_only"], strict=True)
        )
        entry["rebuild_s_median"] = round(median(entry["rebuild_s"]), 3)
    per_size = {_label(x): per_size[_label(x)] for x in SIZES}

    sized = {k: v for k, v in per_size.items() if k != "none"}
    best = min(sized, key=lambda k: sized[k]["selector_query"]["p50"])
    best_ids = min(sized, key=lambda k: sized[k]["ids_only"]["p50"])
    best_exec = min(sized, key=lambda k: sized[k]["server_execution_us"]["p50"])
    none_p50 = per_size["none"]["selector_query"]["p50"]
    best_p50 = sized[best]["selector_query"]["p50"]
    current = str(settings.GEO311_SUBDIVIDE_MAX_VERTICES)
    details = {
        "points": POINTS,
        "rounds": "2: sizes ascending on the first half of the points, descending on the second",
        "warmup_points": WARMUP,
        "point_seed": 2023,
        "best_max_vertices": int(best),
        "best_max_vertices_ids_only": int(best_ids),
        "best_max_vertices_server_execution": int(best_exec),
        "explained_points_per_size": 2 * EXPLAINED,
        "current_setting": int(current),
        "current_setting_p50_us": sized[current]["selector_query"]["p50"]
        if current in sized
        else None,
        "per_size": per_size,
        "query": "boundaries.selectors.boundaries_containing(point=…) via sql_with_params(), "
        "psycopg 3, server-side bound, prepared, plan_cache_mode=force_custom_plan; 'none' = "
        "the same select_related query filtering Boundary.geom directly",
        "latency_unit": "µs per query, execute + fetchall, client side",
        "notes": [
            "server_planning_us / server_execution_us: what PostgreSQL reports under EXPLAIN "
            "(ANALYZE, TIMING OFF) for the selector query on 300 points per round: the piece "
            "size only changes the execution part.",
            "selector_query selects exactly what the selector selects (the Boundary, version "
            "and layer columns it does not defer); ids_only keeps its WHERE and selects only "
            "id, layer slug and code.",
            "rebuild_s (one per round) is the ST_Subdivide cost of the 7 layers at that size, "
            "plus VACUUM ANALYZE: the subdivision is work every import of those layers pays "
            "(see boundary_import_nyc).",
        ],
        "goal_met": best_p50 < none_p50,
    }
    return write_result(
        name=NAME,
        value=best_p50,
        unit="µs",
        baseline="lookup against whole Boundary polygons (no ST_Subdivide parts)",
        baseline_value=none_p50,
        goal="fastest piece size, faster than whole polygons; set GEO311_SUBDIVIDE_MAX_VERTICES",
        details=details,
    )
