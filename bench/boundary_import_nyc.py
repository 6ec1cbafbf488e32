"""boundary_import_nyc: the 7 NYC layers through ``import_manifest`` (read, validate, repair,
reproject, COPY, ST_Subdivide, activate) against a bare ``ogr2ogr`` load of the same files.

Both start from nothing in every run: ours after the 7 NYC layers are deleted (other layers in
the bench database are left alone), ogr2ogr into a freshly created scratch schema
(``bench_ogr``) of the bench database. 3 runs each, interleaved, medians compared. The value is
``import_manifest`` as called by default (one layer after the other); the same import with
GEO311_SUBDIVIDE_MAX_VERTICES=512 and with ``jobs=nproc`` (layers in parallel, as
``load_boundary_set`` does by default) are reported in the details. After the runs, the
selector's lookup is timed on the freshly imported tables before and after ANALYZE (all four
boundary tables). When ours is above the goal, one extra
import runs under cProfile and the heaviest functions are stored in the details.
"""

from __future__ import annotations

import cProfile
import inspect
import io
import os
import pstats
import subprocess
import time

from .common import CONNINFO, BenchError, latency_stats, log, median, raw_connection, write_result
from .nyc import (
    import_nyc,
    manifest_files,
    parts_count,
    sample_points,
    selector_lookup_sql,
    wipe_layers,
)
from .sqltime import time_queries

NAME = "boundary_import_nyc"
RUNS = 3
GOAL_RATIO = 1.5
SCHEMA = "bench_ogr"
# The same import with GEO311_SUBDIVIDE_MAX_VERTICES overridden: the piece size that
# subdivide_piece_size finds as fast for lookups as 64 at a third of the ST_Subdivide cost.
WHAT_IF_MAX_VERTICES = 512


def _ogr2ogr_all() -> tuple[float, dict[str, float]]:
    with raw_connection() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    per_file = {}
    started = time.perf_counter()
    for slug, path in manifest_files():
        t0 = time.perf_counter()
        cmd = [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            f"PG:{CONNINFO}",
            str(path),
            "-nln",
            slug,
            "-lco",
            f"SCHEMA={SCHEMA}",
            "-t_srs",
            "EPSG:4326",
            "-nlt",
            "PROMOTE_TO_MULTI",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-overwrite",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"ogr2ogr failed on {path}: {done.stderr.strip()}")
        per_file[slug] = round(time.perf_counter() - t0, 3)
    return time.perf_counter() - started, per_file


def _ogr_counts() -> dict[str, int]:
    with raw_connection() as conn:
        return {
            slug: conn.execute(f'SELECT count(*) FROM {SCHEMA}."{slug}"').fetchone()[0]
            for slug, _ in manifest_files()
        }


def _jobs_supported() -> bool:
    from importers.manifest import import_manifest

    return "jobs" in inspect.signature(import_manifest).parameters


def _ours(
    jobs: int | None = None, max_vertices: int | None = None
) -> tuple[float, dict[str, float], list]:
    """One import from empty; ``max_vertices`` overrides GEO311_SUBDIVIDE_MAX_VERTICES."""
    from django.test import override_settings

    wipe_layers()
    overrides = {} if max_vertices is None else {"GEO311_SUBDIVIDE_MAX_VERTICES": max_vertices}
    with override_settings(**overrides):
        started = time.perf_counter()
        reports = import_nyc(jobs=jobs)
        total = time.perf_counter() - started
    return total, {r.layer: round(r.seconds, 3) for r in reports}, reports


_STATS = """
SELECT relname, n_live_tup, n_mod_since_analyze, last_analyze, last_autoanalyze
FROM pg_stat_user_tables
WHERE relname IN ('boundaries_boundarypart', 'boundaries_boundary', 'boundaries_layerversion')
ORDER BY relname
"""


def _table_stats() -> list[dict]:
    with raw_connection() as conn:
        cur = conn.execute(_STATS)
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _lookup_before_after_analyze() -> dict:
    """Right after an import, with whatever statistics the import left: time the selector's
    query (unprepared, planned per call as Django's are) on 300 points, ANALYZE all four
    boundary tables, time it again. (The import ANALYZEs boundary and parts itself since
    e306ae3; ``boundaries_layerversion`` it does not, and its stats still describe the table
    before the 7 new active versions.)"""
    points = sample_points(350, seed=7)
    warm, points = points[:50], points[50:]
    variants = {"selector_query": selector_lookup_sql()}
    before_stats = _table_stats()
    before = time_queries(variants, points, prepare={"selector_query": False}, warmup=warm)
    with raw_connection() as conn:
        for table in (
            "boundaries_boundarypart",
            "boundaries_boundary",
            "boundaries_layerversion",
            "boundaries_layer",
        ):
            conn.execute(f"ANALYZE {table}")
    after = time_queries(variants, points, prepare={"selector_query": False}, warmup=warm)
    return {
        "points": len(points),
        "before_analyze_us": latency_stats(before["selector_query"].seconds, scale=1e6, nd=1),
        "after_analyze_us": latency_stats(after["selector_query"].seconds, scale=1e6, nd=1),
        "table_stats_before": before_stats,
        "same_answers": before["selector_query"].answers == after["selector_query"].answers,
    }


def _profile_import(top: int = 30) -> dict:
    """One extra import under cProfile: the functions with the most cumulative and own time."""
    wipe_layers()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    import_nyc()
    profiler.disable()
    wall = time.perf_counter() - started
    out = {"wall_s_under_profiler": round(wall, 3)}
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats(key)
        rows = []
        for func, (_cc, nc, tt, ct, _callers) in sorted(
            stats.stats.items(),
            key=lambda kv: kv[1][3 if key == "cumulative" else 2],
            reverse=True,
        )[:top]:
            filename, line, fname = func
            rows.append(
                {
                    "function": f"{filename.split('site-packages/')[-1]}:{line}({fname})",
                    "calls": nc,
                    "tottime_s": round(tt, 3),
                    "cumtime_s": round(ct, 3),
                }
            )
        out[f"top_by_{key}"] = rows
    return out


def run() -> dict:
    manifest_files()  # clear error when the shared data is missing
    jobs = os.cpu_count() or 1
    ours_runs, ogr_runs, par_runs, what_if_runs = [], [], [], []
    ours_layers, ogr_files = [], []
    reports = []
    # Warm the OS file cache and Python imports once, untimed, so run 1 is not an outlier.
    log("warm-up: one untimed ogr2ogr pass")
    _ogr2ogr_all()
    for n in range(1, RUNS + 1):
        t, per_file = _ogr2ogr_all()
        ogr_runs.append(t)
        ogr_files.append(per_file)
        log(f"run {n}: ogr2ogr {t:.2f} s")
        t, per_layer, reports = _ours()
        ours_runs.append(t)
        ours_layers.append(per_layer)
        log(f"run {n}: import_manifest {t:.2f} s")
        t, _, _ = _ours(max_vertices=WHAT_IF_MAX_VERTICES)
        what_if_runs.append(t)
        log(f"run {n}: import_manifest, max_vertices={WHAT_IF_MAX_VERTICES} {t:.2f} s")
        if jobs > 1 and _jobs_supported():
            t, _, _ = _ours(jobs=jobs)
            par_runs.append(t)
            log(f"run {n}: import_manifest(jobs={jobs}) {t:.2f} s")
    log("lookup latency on the freshly imported, not yet analyzed tables, then after ANALYZE")
    fresh = _lookup_before_after_analyze()
    ogr_rows = _ogr_counts()
    ours_med, ogr_med = median(ours_runs), median(ogr_runs)
    ratio = ours_med / ogr_med
    details: dict = {
        "runs": RUNS,
        "ours_runs_s": [round(x, 3) for x in ours_runs],
        "ogr2ogr_runs_s": [round(x, 3) for x in ogr_runs],
        "ours_median_s": round(ours_med, 3),
        "ogr2ogr_median_s": round(ogr_med, 3),
        "ours_per_layer_s": ours_layers,
        "ours_jobs_runs_s": [round(x, 3) for x in par_runs],
        "ours_jobs": jobs if par_runs else None,
        "ours_jobs_median_s": round(median(par_runs), 3) if par_runs else None,
        "ours_jobs_ratio": round(median(par_runs) / ogr_med, 4) if par_runs else None,
        "what_if_max_vertices": WHAT_IF_MAX_VERTICES,
        "what_if_runs_s": [round(x, 3) for x in what_if_runs],
        "what_if_median_s": round(median(what_if_runs), 3),
        "what_if_ratio": round(median(what_if_runs) / ogr_med, 4),
        "lookup_right_after_import": fresh,
        "ogr2ogr_per_file_s": ogr_files,
        "ours_features": {r.layer: r.features for r in reports},
        "ours_vertices": {r.layer: r.vertices for r in reports},
        "ours_repaired": {r.layer: r.repaired for r in reports if r.repaired},
        "ours_parts": parts_count(),
        "ogr2ogr_rows": ogr_rows,
        "ogr2ogr_command": (
            'ogr2ogr -f PostgreSQL PG:"<bench db>" <file> -nln <slug> -lco SCHEMA=bench_ogr '
            "-t_srs EPSG:4326 -nlt PROMOTE_TO_MULTI -lco GEOMETRY_NAME=geom -overwrite"
        ),
        "what_ours_does_more": (
            "checksum, validity check and repair (schooldist: 2 polygons), JSON attributes, "
            "version bookkeeping, ST_Subdivide parts (GEO311_SUBDIVIDE_MAX_VERTICES) with their "
            "GiST index, activation"
        ),
        "goal_met": ratio <= GOAL_RATIO,
    }
    if ratio > GOAL_RATIO:
        log(f"ratio {ratio:.2f} above {GOAL_RATIO}: profiling one more import")
        details["profile"] = _profile_import()
    # Leave the bench database with the 7 layers imported, ready for the other benchmarks.
    with raw_connection() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    from django.conf import settings

    details["subdivide_max_vertices"] = settings.GEO311_SUBDIVIDE_MAX_VERTICES
    return write_result(
        name=NAME,
        value=round(ours_med, 3),
        unit="s",
        baseline="ogr2ogr (Debian gdal-bin) of the same 7 files into PostGIS",
        baseline_value=round(ogr_med, 3),
        goal=f"≤ {GOAL_RATIO}× ogr2ogr",
        details=details,
    )
