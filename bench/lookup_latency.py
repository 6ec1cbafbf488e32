"""lookup_latency: single-point lookup over all active layers through the real API (gunicorn,
one sync worker) against the same lookups as bare SQL.

2,000 random tax-lot points, sent one after another with ``http.client`` (keep-alive asked
for; gunicorn's sync worker answers ``Connection: close``, so each request opens a new
loopback TCP connection, as a client behind no proxy would). Each API request is followed by the
same point as bare SQL, so both see the same background load:

- ``sql``: the selector's exact query (``sql_with_params()``), psycopg, prepared with
  ``plan_cache_mode = force_custom_plan`` (planned for each point, as Django's queries are, but
  parsed once) — the baseline;
- ``sql_unprepared``: the same query sent unprepared (parsed and planned on every call);
- ``sql_ids_only``: the same WHERE selecting only id, layer and code, prepared as ``sql``.

Then 100 of the points once more with PostgreSQL's default plan cache (``auto``, which may
switch a prepared statement to a generic plan after 5 runs) and with a forced generic plan:
what server-side prepared statements (Django's ``server_side_binding`` with psycopg's
``prepare_threshold``) would do to this query.

Every answer must be 200; for points inside NYC (inside some borough by the SQL answer) the API
must name all 6 labelled layers, and its boundary ids must equal the SQL answer's.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import time
from pathlib import Path

from .common import (
    Gunicorn,
    free_port,
    latency_stats,
    log,
    write_result,
)
from .nyc import (
    LABELLED,
    active_versions,
    ensure_nyc_layers,
    ids_only,
    rebuild_parts,
    sample_points,
    selector_lookup_sql,
)
from .sqltime import SqlVariants, time_queries

NAME = "lookup_latency"
REQUESTS = 2_000
WARMUP = 100
SEED = 42


ORM_POINTS = 300


def _orm_what_if(points: list) -> dict:
    """In-process: the selector's queryset evaluated by the ORM as the API does, and the same
    queryset with only the columns the API serializes (no outlines, no JSON): what a
    ``.only(...)`` in ``boundaries_containing`` (or a lookup-specific selector) would save."""
    from django.contrib.gis.geos import Point

    from boundaries.selectors import boundaries_containing

    only = (
        "id",
        "code",
        "name",
        "version__id",
        "version__number",
        "version__layer_id",
        "version__layer__id",
        "version__layer__slug",
        "version__layer__name",
        "version__layer__kind",
    )
    full, slim, same = [], [], 0
    for p in points:
        point = Point(p.lon, p.lat, srid=4326)
        t0 = time.perf_counter()
        a = [(b.pk, b.code, b.version.layer.slug) for b in boundaries_containing(point=point)]
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = [
            (x.pk, x.code, x.version.layer.slug)
            for x in boundaries_containing(point=point).only(*only)
        ]
        slim.append(time.perf_counter() - t0)
        same += a == b
    return {
        "points": len(points),
        "orm_selector_ms": latency_stats(full, scale=1e3),
        "orm_selector_only_api_columns_ms": latency_stats(slim, scale=1e3),
        "same_answers": same,
        "only_columns": list(only),
    }


def _in_process_api(points: list, top: int = 20) -> dict:
    """The same GET through Django's test client in this process (full middleware and DRF, no
    gunicorn, no socket): how much of the API time is Django itself; the second pass under
    cProfile says where it goes."""
    import cProfile
    import pstats

    from django.test import Client

    client = Client()
    urls = [f"/api/v1/boundaries/lookup?lat={p.lat!r}&lon={p.lon!r}" for p in points]
    for url in urls[:20]:  # warm-up
        client.get(url, HTTP_ACCEPT="application/json")
    plain = []
    for url in urls:
        t0 = time.perf_counter()
        client.get(url, HTTP_ACCEPT="application/json")
        plain.append(time.perf_counter() - t0)
    profiler = cProfile.Profile()
    profiler.enable()
    for url in urls:
        client.get(url, HTTP_ACCEPT="application/json")
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    n = len(urls)
    rows = sorted(stats.items(), key=lambda kv: kv[1][3], reverse=True)[:top]
    own = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]

    def fmt(func) -> str:  # type: ignore[no-untyped-def]
        filename, line, name = func
        return f"{filename.split('site-packages/')[-1]}:{line}({name})"

    return {
        "requests": n,
        "test_client_ms": latency_stats(plain, scale=1e3),
        "profile_top_cumulative_ms_per_request": [
            {"function": fmt(f), "ms": round(v[3] / n * 1e3, 3)} for f, v in rows
        ],
        "profile_top_own_time_ms_per_request": [
            {"function": fmt(f), "ms": round(v[2] / n * 1e3, 3)} for f, v in own
        ],
    }


def run() -> dict:
    from django.conf import settings

    ensure_nyc_layers()
    log(f"parts at GEO311_SUBDIVIDE_MAX_VERTICES={settings.GEO311_SUBDIVIDE_MAX_VERTICES}")
    parts = rebuild_parts(settings.GEO311_SUBDIVIDE_MAX_VERTICES)
    points = sample_points(WARMUP + REQUESTS, seed=SEED)
    warm, points = points[:WARMUP], points[WARMUP:]

    query = selector_lookup_sql()
    sql = SqlVariants(
        {"sql": query, "sql_unprepared": query, "sql_ids_only": ids_only(query)},
        prepare={"sql_unprepared": False},
    )
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="geo311-bench-"))
    server = Gunicorn(port, workdir / "gunicorn.log", ["--workers", "1"])
    api_s: list[float] = []
    sql_s: dict[str, list[float]] = {name: [] for name in sql.variants}
    statuses: dict[int, int] = {}
    closes = 0
    body_bytes = 0
    missing_layers: list[dict] = []
    id_mismatch = 0
    inside = 0
    label_disagree = {c: 0 for c in LABELLED}
    try:
        server.wait_ready()
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "application/json", "Connection": "keep-alive"}
        for i, p in enumerate([*warm, *points]):
            timed = i >= len(warm)
            url = f"/api/v1/boundaries/lookup?lat={p.lat!r}&lon={p.lon!r}"
            t0 = time.perf_counter()
            client.request("GET", url, headers=headers)
            resp = client.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            answers = sql.run(p)
            if not timed:
                continue
            api_s.append(dt)
            for name, (sdt, _ids) in answers.items():
                sql_s[name].append(sdt)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            closes += resp.getheader("Connection", "").lower() == "close"
            body_bytes += len(body)
            if resp.status != 200:
                continue
            data = json.loads(body)
            found = {layer["layer"]: layer for layer in data["layers"]}
            api_ids = frozenset(b["id"] for layer in data["layers"] for b in layer["boundaries"])
            sql_ids = answers["sql"][1]
            id_mismatch += api_ids != sql_ids
            if "borough" in found:
                inside += 1
                missing = [c for c in LABELLED if c not in found]
                if missing and len(missing_layers) < 20:
                    missing_layers.append({"lat": p.lat, "lon": p.lon, "missing": missing})
                elif missing:
                    missing_layers.append({"missing": missing})
            for c in LABELLED:
                codes = {b["code"] for b in found.get(c, {"boundaries": []})["boundaries"]}
                label_disagree[c] += codes != {p.labels[c]}
        client.close()
    finally:
        server.stop()
        sql.close()
        shutil.rmtree(workdir, ignore_errors=True)

    log("plan cache: 100 points with plan_cache_mode auto and force_generic_plan")
    cache = time_queries(
        {"auto": query, "generic": query, "custom": query},
        points[:100],
        plan_cache_mode={"auto": "auto", "generic": "force_generic_plan"},
        warmup=warm[:10],
    )
    plan_cache = {name: latency_stats(t.seconds, scale=1e3) for name, t in cache.items()} | {
        "same_answers": cache["auto"].answers == cache["custom"].answers
        and cache["generic"].answers == cache["custom"].answers
    }
    log("in-process ORM what-if: full rows vs only the columns the API serializes")
    what_if = _orm_what_if(points[:ORM_POINTS])
    log("in-process API through Django's test client, then under cProfile")
    in_process = _in_process_api(points[:ORM_POINTS])
    api = latency_stats(api_s, scale=1e3)
    stats = {name: latency_stats(v, scale=1e3) for name, v in sql_s.items()}
    non_200 = sum(n for code, n in statuses.items() if code != 200)
    details = {
        "requests": REQUESTS,
        "warmup_requests": WARMUP,
        "point_seed": SEED,
        "api_ms": api,
        "sql_ms": stats["sql"],
        "sql_unprepared_ms": stats["sql_unprepared"],
        "sql_ids_only_ms": stats["sql_ids_only"],
        "api_p99_ms": api["p99"],
        "sql_p99_ms": stats["sql"]["p99"],
        "statuses": {str(k): v for k, v in statuses.items()},
        "non_200": non_200,
        "points_inside_nyc": inside,
        "points_missing_layers": len(missing_layers),
        "missing_layer_examples": missing_layers[:20],
        "api_vs_sql_id_mismatches": id_mismatch,
        "prepared_plan_cache_ms": plan_cache,
        "orm_what_if": what_if,
        "in_process_api": in_process,
        "label_disagreements_in_sample": label_disagree,
        "responses_with_connection_close": closes,
        "mean_response_bytes": round(body_bytes / max(1, len(api_s))),
        "server": " ".join(
            ["gunicorn", "geo311.wsgi", "-b", "127.0.0.1:<free port>", "--workers", "1"]
        ),
        "client": "http.client.HTTPConnection, sequential, Accept: application/json",
        "subdivide_max_vertices": settings.GEO311_SUBDIVIDE_MAX_VERTICES,
        "parts": parts,
        "active_layers": sorted(active_versions()),
        "notes": [
            "sql = the selector's exact query, prepared, force_custom_plan (baseline); "
            "sql_unprepared = parsed and planned on every call like Django's client-side-bound "
            "queries; sql_ids_only = same WHERE selecting id, slug, code only.",
            "prepared_plan_cache_ms: the same query prepared with plan_cache_mode auto "
            "(PostgreSQL's default), force_generic_plan and force_custom_plan, on 100 points.",
            "gunicorn's sync worker closes the connection after every response, so every request "
            "includes a loopback TCP connect despite the keep-alive client.",
        ],
        "goal_met": non_200 == 0 and not missing_layers and id_mismatch == 0,
    }
    return write_result(
        name=NAME,
        value=api["p50"],
        unit="ms",
        baseline="bare SQL: the selector's exact query via psycopg, prepared (custom plans)",
        baseline_value=stats["sql"]["p50"],
        goal="every answer 200 with all 6 labelled layers; report API vs SQL p50/p99",
        details=details,
    )
