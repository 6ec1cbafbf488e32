"""performance_report: the managers' performance report (maps.performance) over more than a
million requests, end to end as the API builds it.

Data: the 1.2 million synthetic requests of ``nearby_query`` (its loader, reused; with the
855,552 lot requests of ``hotspots_gi_nyc`` when that ran first, all in the report), given what
real history has and the loader does not make: status events (created; for 70% an
"acknowledged" step 1-48 hours later when still open by then; the closing), an SLA
(``expected_at``: 3, 7 or 14 days by category, for two categories in three) and the areas they
were routed to (council district and community district of the 7 NYC layers, by one spatial
join, frozen in ``routing`` as the router writes it). Made once and kept while the synthetic
rows are (see nearby_query's freshness rule).

Timed: ``performance_report`` over every request in the table, by council district — the
value is the median of RUNS runs — against the same report without areas (baseline, to show
what the area dimension costs), each run's CPU time in this process and the server's, and the
load average. It reads the request facts (maps_requestfact), brought up to date before the
runs; the full refresh and a refresh with nothing new are timed apart.
"""

from __future__ import annotations

import os
import time

from .common import BenchError, log, median, raw_connection, write_result
from .nearby_query import HISTORY_DAYS
from .nyc import ensure_nyc_layers

NAME = "performance_report"
RUNS = 5
GOAL_S = 2.0
LAYER = "councildist_2023"
ROUTED_LAYERS = ("councildist_2023", "communitydist")
SEED = 0.311

# Status events the history would have: created (initial status), acknowledged 1-48 h later
# for 70% (when that is before the closing and before now), closed at closed_at.
EVENTS = """
WITH st AS (
    SELECT (SELECT id FROM geo311_status WHERE is_initial) AS initial,
           (SELECT id FROM geo311_status WHERE code = 'acknowledged') AS ack
), todo AS (
    SELECT r.id, r.requested_at, r.closed_at, r.status_id,
           r.requested_at + (1 + random() * 47) * interval '1 hour' AS ack_at,
           random() < 0.7 AS acknowledged
    FROM geo311_servicerequest r
    WHERE r.source = %(source)s
      AND NOT EXISTS (SELECT 1 FROM geo311_statusevent e WHERE e.request_id = r.id)
)
INSERT INTO geo311_statusevent (request_id, status_id, note, public, created_at, actor)
SELECT id, st.initial, 'Received', true, requested_at, 'bench' FROM todo, st
UNION ALL
SELECT id, st.ack, '', true, ack_at, 'bench' FROM todo, st
WHERE acknowledged AND ack_at < coalesce(closed_at, now())
UNION ALL
SELECT id, status_id, '', true, closed_at, 'bench' FROM todo WHERE closed_at IS NOT NULL
"""

# SLA: 3, 7 or 14 days by category; every third category has none.
SLA = """
UPDATE geo311_servicerequest r
SET expected_at = r.requested_at + make_interval(days => (ARRAY[3, 7, 14])[1 + r.category_id %% 3])
WHERE r.source = %(source)s AND r.expected_at IS NULL AND r.category_id %% 3 <> 0
"""

# The areas each request lies in, frozen in routing as geo311.routing writes them.
ROUTE = """
WITH hit AS (
    SELECT r.id,
           jsonb_agg(jsonb_build_object('layer', l.slug, 'code', b.code, 'name', b.name,
                                        'version', v.number) ORDER BY l.slug) AS boundaries
    FROM geo311_servicerequest r
    JOIN boundaries_boundarypart p ON ST_Intersects(p.geom, r.location)
    JOIN boundaries_layerversion v ON v.id = p.version_id AND v.status = 'active'
    JOIN boundaries_layer l ON l.id = v.layer_id AND l.slug = ANY (%(layers)s)
    JOIN boundaries_boundary b ON b.id = p.boundary_id
    WHERE r.source = %(source)s AND NOT (r.routing ? 'boundaries')
    GROUP BY r.id
)
UPDATE geo311_servicerequest r
SET routing = jsonb_build_object('rule', 'category default department', 'boundaries',
                                 hit.boundaries)
FROM hit WHERE hit.id = r.id
"""


def ensure_history(source: str) -> dict:
    """Events, SLAs and routed areas for the synthetic rows that lack them."""
    done: dict = {}
    with raw_connection() as conn:
        conn.execute("SET jit = off")
        conn.execute("SELECT setseed(%s)", [SEED])
        t0 = time.perf_counter()
        cur = conn.execute(EVENTS, {"source": source})
        done["events_added"] = cur.rowcount
        cur = conn.execute(SLA, {"source": source})
        done["sla_set"] = cur.rowcount
        cur = conn.execute(ROUTE, {"source": source, "layers": list(ROUTED_LAYERS)})
        done["routed"] = cur.rowcount
        if done["events_added"] or done["sla_set"] or done["routed"]:
            log(f"history added in {time.perf_counter() - t0:.1f} s: {done}; VACUUM ANALYZE")
            conn.execute("VACUUM ANALYZE geo311_servicerequest")
            conn.execute("VACUUM ANALYZE geo311_statusevent")
        done["seconds"] = round(time.perf_counter() - t0, 1)
    return done


def _backend_cpu_s() -> float:
    """CPU seconds (user + system, from /proc) used so far by this process's database backend:
    the server side of the report (its parallel workers are separate processes and not in it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _two_years():  # type: ignore[no-untyped-def]
    """The synthetic requests' two years (the last 730 days): 1.2 million requests."""
    import datetime as dt

    from django.utils import timezone

    from maps.filters import RequestFilter

    return RequestFilter(start=timezone.localdate() - dt.timedelta(days=HISTORY_DAYS))


def _time_report(layer: str | None, request_filter=None) -> tuple[float, float, dict]:  # type: ignore[no-untyped-def]
    from maps.performance import performance_report

    c0 = time.process_time()
    t0 = time.perf_counter()
    report = performance_report(request_filter=request_filter or _two_years(), layer=layer)
    return time.perf_counter() - t0, time.process_time() - c0, report


def run() -> dict:
    from django.db import connection

    from maps import services
    from maps.filters import RequestFilter

    from . import nearby_query

    loaded = nearby_query.ensure_rows()
    ensure_nyc_layers()
    history = ensure_history(nearby_query.SOURCE)
    # The facts the report reads: brought up to date (a periodic job's work), then the cost of
    # a refresh with nothing new, which is what the job pays every five minutes.
    t0 = time.perf_counter()
    facts = services.request_facts_refresh()
    facts["seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    services.request_facts_refresh()
    facts["noop_refresh_s"] = round(time.perf_counter() - t0, 2)
    log(f"request facts: {facts}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo311_servicerequest")
        rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM geo311_statusevent")
        events = cursor.fetchone()[0]
    if rows < 1_000_000:
        raise BenchError(f"only {rows:,} requests in the table; the benchmark needs 1,000,000")
    log(f"{rows:,} requests, {events:,} status events; warming up")
    _time_report(LAYER)
    ours, ours_cpu, baseline, baseline_cpu, loads = [], [], [], [], []
    report: dict = {}
    for n in range(RUNS):
        loads.append(os.getloadavg()[0])
        for layer in (LAYER, None):
            before = _backend_cpu_s()
            wall, cpu, result = _time_report(layer)
            server = _backend_cpu_s() - before
            if layer:
                ours.append(wall)
                ours_cpu.append((cpu, server))
                report = result
            else:
                baseline.append(wall)
                baseline_cpu.append((cpu, server))
        log(f"run {n + 1}: by area {ours[-1]:.2f} s, without areas {baseline[-1]:.2f} s")
    everything_s, everything_cpu, everything = _time_report(LAYER, RequestFilter())
    log(f"every request in the table ({everything['city']['requests']:,}): {everything_s:.2f} s")
    value = round(median(ours), 3)
    city = report["city"]
    details = {
        "requests_in_table": rows,
        "requests_in_report": city["requests"],
        "report_filter": report["filter"],
        "every_request_in_the_table": {
            "requests": everything["city"]["requests"],
            "wall_s": round(everything_s, 3),
            "client_cpu_s": round(everything_cpu, 3),
        },
        "status_events": events,
        "runs_s": [round(x, 3) for x in ours],
        "without_areas_runs_s": [round(x, 3) for x in baseline],
        "client_cpu_s": [round(c, 3) for c, _ in ours_cpu],
        "server_cpu_s": [round(s, 3) for _, s in ours_cpu],
        "without_areas_client_cpu_s": [round(c, 3) for c, _ in baseline_cpu],
        "without_areas_server_cpu_s": [round(s, 3) for _, s in baseline_cpu],
        "loadavg_1min_before_runs": [round(x, 2) for x in loads],
        "layer": LAYER,
        "groups": {
            k: len(report[k])
            for k in (
                "by_department",
                "by_category",
                "by_area",
                "by_month",
                "detail",
                "backlog",
                "open_work",
            )
        },
        "city": city,
        "data_load": loaded,
        "history": history,
        "request_facts": facts,
        "goal_met": value <= GOAL_S and city["requests"] >= 1_000_000,
        "notes": [
            "value = wall time of maps.performance.performance_report over the synthetic "
            "requests' two years (1.2M), by council district: the request facts read once "
            "(on GEO311_ANALYSIS_CONNECTIONS connections), then every grouping (department × "
            "category × area × month, each alone, the city), the monthly backlog, open work "
            "and equity with numpy; median of the runs. every_request_in_the_table: one run "
            "over the whole table (with hotspots_gi_nyc's lots when they are there)",
            "baseline = the same report without the area dimension (layer None)",
            "server_cpu_s is the CPU of this process's database backend over each run "
            "(not its parallel workers); client_cpu_s is this process",
        ],
    }
    return write_result(
        name=NAME,
        value=value,
        unit="s",
        baseline="the same report without areas (layer None), median",
        baseline_value=round(median(baseline), 3),
        goal=f"≤ {GOAL_S:g} s over ≥ 1M requests",
        details=details,
    )
