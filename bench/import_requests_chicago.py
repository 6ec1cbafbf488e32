"""import_requests_chicago: the historical import of Chicago's 74,401 sanitation complaints, rows
per second, against a bare COPY of the same CSV.

Setup (not timed): the 7 NYC layers stay active if they are there (imported when they are not:
the bench database holds both cities, as open311_post needs), the Chicago demo layers and city
config are loaded (``geo311/demo/chicago``), and before every run the request tables are
emptied (``TRUNCATE geo311_servicerequest ... CASCADE``).

- **ours**: ``importers.requests.import_request_file`` with
  ``importers/mappings/chicago_sanitation.yaml``, exactly what ``manage.py import_requests``
  does: read and check every row in Python (address normal forms included), place the points
  in the active boundaries (``boundaries.selectors.points_places``), COPY the clean rows to
  staging, route them all by set-based SQL (most specific rule, jurisdiction and required
  layers), insert the requests and their status events, check the foreign keys, commit. Timed
  from the call to its return (its own per-stage seconds and its CPU seconds are kept too).
- **baseline**: ``COPY bench_copy_chicago FROM STDIN WITH (FORMAT csv, HEADER)`` of the same file
  (streamed by psycopg) into a fresh table of 16 text columns, committed: the floor for getting
  the bytes of this file into PostgreSQL.
- **floor** (details): the rows the import wrote, dumped and COPYed back into the emptied
  request tables with their indexes and foreign keys: the floor for storing these rows in the
  tables a 311 service needs, however they are computed. Also into index-only copies (no FKs).

Runs alternate (ours, COPY, ours, ...); value = file rows / median seconds of ours; ratio = ours
median seconds / COPY median seconds. Goals: ≥ 50,000 rows/s and ratio ≤ 5. The rows of the last
run stay in the database (source ``SOURCE``) for routing_agreement_chicago.
"""

from __future__ import annotations

import json
import time

from . import common
from .common import REPO, data_path, log, median, write_result

NAME = "import_requests_chicago"
RUNS = 5
CSV_PATH = ("chicago", "requests", "sanitation_code_complaints_2011_2014.csv")
MAPPING = REPO / "importers" / "mappings" / "chicago_sanitation.yaml"
DEMO = REPO / "geo311" / "demo" / "chicago"
# The source name duplicates_chicago gives the same file: one import serves both.
SOURCE = "bench:chicago_sanitation_2011_2014"
GOAL_ROWS_PER_S = 50_000
GOAL_RATIO = 5.0

COPY_TABLE = "bench_copy_chicago"


def ensure_city() -> dict:
    """NYC's 7 layers (kept when present) + the Chicago demo layers and city config."""
    from geo311.config import city_config_load, read_config
    from importers.manifest import import_manifest

    from .bulk_route_nyc import ensure_nyc_layers_kept

    t0 = time.perf_counter()
    ensure_nyc_layers_kept()
    reports = import_manifest(DEMO / "layers.json")
    city_config_load(data=read_config(DEMO / "city.yaml"))
    return {
        "chicago_layers_loaded_now": [r.layer for r in reports if not r.unchanged],
        "setup_s": round(time.perf_counter() - t0, 2),
    }


def empty_request_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE geo311_servicerequest, geo311_statusevent CASCADE")


def run_ours(path) -> tuple[float, object, dict]:  # type: ignore[no-untyped-def]
    """One import into emptied tables: seconds, its report, and its CPU seconds (this process
    and its PostgreSQL backend)."""
    from importers.requests import import_request_file, read_mapping

    mapping = read_mapping(MAPPING)
    empty_request_tables()
    backend = common.django_backend_pid()
    cpu0 = time.process_time(), common.backend_cpu_s(backend)
    t0 = time.perf_counter()
    report = import_request_file(path, mapping=mapping, source_name=SOURCE)
    seconds = time.perf_counter() - t0
    return seconds, report, _cpu(cpu0, backend)


def _cpu(start: tuple[float, float], backend: int) -> dict:
    client = time.process_time() - start[0]
    server = common.backend_cpu_s(backend) - start[1]
    return {
        "client": round(client, 3),
        "postgres": round(server, 3),
        "total": round(client + server, 3),
    }


def run_copy(path) -> tuple[float, int, dict]:  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8-sig").strip().split(",")
    columns = ", ".join(f'"{c}" text' for c in header)
    with common.raw_connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        conn.execute(f"CREATE TABLE {COPY_TABLE} ({columns})")
        backend = conn.info.backend_pid
        cpu0 = time.process_time(), common.backend_cpu_s(backend)
        t0 = time.perf_counter()
        with (
            conn.transaction(),
            path.open("rb") as fh,
            conn.cursor().copy(
                f"COPY {COPY_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - t0
        cpu = _cpu(cpu0, backend)
        rows = conn.execute(f"SELECT count(*) FROM {COPY_TABLE}").fetchone()[0]
        conn.execute(f"DROP TABLE {COPY_TABLE}")
    return seconds, rows, cpu


# The floor: the very rows the import wrote (requests and their events, binary, dumped after
# it), COPYed back into the emptied tables. "real" keeps their 13 + 3 indexes and the foreign
# keys, checked before the commit as the import checks them; "no_fk" is a copy of the two
# tables with the same indexes and no foreign keys.
FLOOR_RUNS = 3
FLOOR_TABLES = {
    "real": ("geo311_servicerequest", "geo311_statusevent"),
    "no_fk": ("bench_floor_request", "bench_floor_event"),
}


def _dump(conn, query: str) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    with conn.cursor().copy(
        f"COPY ({query}) TO STDOUT (FORMAT binary)", {"source": SOURCE}
    ) as copy:
        for block in copy:
            out += block
    return bytes(out)


def floor() -> dict:
    """Seconds (and CPU) to COPY the imported rows back, per FLOOR_TABLES kind; leaves the
    imported rows in the real tables, as they were."""
    with common.raw_connection() as conn:
        requests = _dump(
            conn,
            "SELECT * FROM geo311_servicerequest WHERE source = %(source)s ORDER BY id",
        )
        events = _dump(
            conn,
            "SELECT e.* FROM geo311_statusevent e JOIN geo311_servicerequest r "
            "ON r.id = e.request_id WHERE r.source = %(source)s ORDER BY e.id",
        )
        conn.execute("DROP TABLE IF EXISTS bench_floor_request, bench_floor_event")
        conn.execute(
            "CREATE TABLE bench_floor_request (LIKE geo311_servicerequest INCLUDING ALL);"
            "CREATE TABLE bench_floor_event (LIKE geo311_statusevent INCLUDING ALL)"
        )
        backend = conn.info.backend_pid
        runs: dict[str, list[dict]] = {kind: [] for kind in FLOOR_TABLES}
        for _ in range(FLOOR_RUNS):
            for kind, (request_table, event_table) in FLOOR_TABLES.items():
                conn.execute(f"TRUNCATE {request_table}, {event_table} CASCADE")
                lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
                cpu0 = time.process_time(), common.backend_cpu_s(backend)
                t0 = time.perf_counter()
                with conn.transaction():
                    for table, data in ((request_table, requests), (event_table, events)):
                        with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as c:
                            c.write(data)
                    copied = time.perf_counter() - t0
                    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                seconds = time.perf_counter() - t0
                wal = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [lsn]
                ).fetchone()[0]
                runs[kind].append(
                    {
                        "s": round(seconds, 3),
                        "copy_s": round(copied, 3),
                        "cpu_s": _cpu(cpu0, backend),
                        "wal_bytes": int(wal),
                    }
                )
        conn.execute("DROP TABLE bench_floor_request, bench_floor_event")
    return {
        kind: {
            "median_s": round(median([r["s"] for r in kind_runs]), 3),
            "median_cpu_s": round(median([r["cpu_s"]["total"] for r in kind_runs]), 3),
            "runs": kind_runs,
        }
        for kind, kind_runs in runs.items()
    } | {"request_bytes": len(requests), "event_bytes": len(events)}


def _plan_nodes(plan: dict, out: list) -> list:
    """(node type, relation, rows, actual total ms, WAL bytes) of every node of a JSON plan."""
    out.append(
        (
            plan.get("Node Type"),
            plan.get("Relation Name") or plan.get("CTE Name") or "",
            plan.get("Actual Rows"),
            plan.get("Actual Total Time"),
            plan.get("WAL Bytes"),
        )
    )
    for child in plan.get("Plans", []):
        _plan_nodes(child, out)
    return out


def breakdown(path) -> dict:  # type: ignore[no-untyped-def]
    """One more import (not in the medians) cut into the importer's steps, the set-based SQL of
    geo311.sql run one statement at a time as import_staged_requests runs it, IMPORT_STAGED
    under EXPLAIN (ANALYZE, WAL): where the seconds go, and how much WAL the rows cost."""
    from django.db import connection, transaction

    from geo311 import sql
    from geo311.models import RoutingRule
    from importers import requests as ir

    mapping = ir.read_mapping(MAPPING)
    empty_request_tables()
    out: dict = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        out[name] = round(now - t, 3)
        t = now

    header, rows = ir._read_csv(path)
    categories, statuses, initial = ir._lookups(mapping)
    lap("read_s")
    clean = ir._check_rows(header, rows, mapping, categories=categories, statuses=statuses)
    lap("check_s")
    rules = {
        str(r.pk): r.describe() for r in RoutingRule.objects.select_related("category", "layer")
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        lsn = cursor.fetchone()[0]
    lap("rules_s")
    with transaction.atomic(), connection.cursor() as cursor:
        place_of_row = ir._places_of_rows(clean.lons, clean.lats)
        lap("route_points_s")
        sql.stage_requests(
            rows=(
                (*row, place)
                for row, place in zip(clean.stage_rows, place_of_row.tolist(), strict=True)
            )
        )
        lap("stage_copy_s")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql.ROUTE_PLACES, {"rules": json.dumps(rules)})
        lap("route_places_s")
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + sql.IMPORT_STAGED,
            {"source": SOURCE, "initial": initial, "actor": f"import: {SOURCE}"},
        )
        plan = cursor.fetchone()[0]
        lap("import_staged_s")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        lap("deferred_fk_checks_s")
        cursor.execute(
            "SELECT count(DISTINCT (lon, lat)) FROM import_request_stage UNION ALL "
            "SELECT count(*) FROM boundary_place UNION ALL "
            "SELECT count(*) FROM import_request_route"
        )
        points, places, routes = (r[0] for r in cursor.fetchall())
    lap("commit_s")
    out["total_s"] = round(time.perf_counter() - t0, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [lsn])
        wal = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE am.amname = 'gist') FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = 'geo311_servicerequest'::regclass"
        )
        indexes, gist = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN "
            "('geo311_servicerequest'::regclass, 'geo311_statusevent'::regclass)"
        )
        fks = cursor.fetchone()[0]
    root = plan[0]
    nodes = _plan_nodes(root["Plan"], [])
    inserts = {
        rel: {"rows": n, "ms": round(ms, 1), "wal_bytes": w}
        for kind, rel, n, ms, w in nodes
        if kind == "ModifyTable"
    }
    out |= {
        "import_staged_execution_ms": round(root.get("Execution Time", 0.0), 1),
        "inserts": inserts,
        "distinct_points": points,
        "places": places,
        "place_category_routes": routes,
        "wal_bytes_total": wal,
        "wal_bytes_per_imported_row": round(wal / max(1, len(clean.stage_rows))),
        "servicerequest_indexes": indexes,
        "servicerequest_gist_indexes": gist,
        "foreign_keys_checked": fks,
    }
    return out


def run() -> dict:
    from django.db import connection

    path = data_path(*CSV_PATH)
    setup = ensure_city()
    ours_s: list[float] = []
    ours_cpu: list[dict] = []
    copy_s: list[float] = []
    copy_cpu: list[dict] = []
    stages: list[dict] = []
    report = None
    copy_rows = 0
    for i in range(RUNS):
        seconds, report, cpu = run_ours(path)
        ours_s.append(seconds)
        ours_cpu.append(cpu)
        stages.append({k: round(v, 3) for k, v in report.seconds.items()})
        log(f"run {i + 1}/{RUNS}: import {seconds:.2f} s, CPU {cpu} {stages[-1]}")
        seconds, copy_rows, cpu = run_copy(path)
        copy_s.append(seconds)
        copy_cpu.append(cpu)
        log(f"run {i + 1}/{RUNS}: COPY {seconds:.3f} s ({copy_rows:,} rows)")
    assert report is not None
    log("one more import, step by step (not in the medians)")
    steps = breakdown(path)
    log(f"steps: {steps}")
    log("the floor: the imported rows COPYed back into the indexed tables")
    floors = floor()
    log(f"floor: { {k: v for k, v in floors.items() if k in FLOOR_TABLES} }")
    # The last import stays for routing_agreement_chicago: the breakdown's rows are the same
    # file under the same source, committed the same way.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE geo311_servicerequest")
        cursor.execute("ANALYZE geo311_statusevent")
        cursor.execute("SELECT count(*) FROM geo311_servicerequest WHERE source = %s", [SOURCE])
        in_db = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM geo311_statusevent e JOIN geo311_servicerequest r "
            "ON r.id = e.request_id WHERE r.source = %s",
            [SOURCE],
        )
        events = cursor.fetchone()[0]
    ours = median(ours_s)
    baseline = median(copy_s)
    rows = report.rows
    rate = rows / ours
    ratio = ours / baseline
    floor_s = floors["real"]["median_s"]
    stage_medians = {k: round(median([s.get(k, 0.0) for s in stages]), 3) for k in stages[0]}
    log(report.summary())
    details = {
        "file_rows": rows,
        "copy_rows": copy_rows,
        "imported": report.imported,
        "rejected": len(report.rejected),
        "rejected_by_reason": dict(report.reasons()),
        "present": report.present,
        "closed_at_created": report.closed_at_created,
        "requests_in_db": in_db,
        "status_events_in_db": events,
        "runs": RUNS,
        "ours_runs_s": [round(s, 3) for s in ours_s],
        "copy_runs_s": [round(s, 3) for s in copy_s],
        "ours_s": round(ours, 3),
        "copy_s": round(baseline, 4),
        "copy_rows_per_s": round(rows / baseline),
        "ratio": round(ratio, 3),
        "ours_cpu_s_runs": ours_cpu,
        "ours_cpu_s_median": round(median([c["total"] for c in ours_cpu]), 3),
        "copy_cpu_s_median": round(median([c["total"] for c in copy_cpu]), 3),
        "cpu_ratio": round(
            median([c["total"] for c in ours_cpu]) / median([c["total"] for c in copy_cpu]), 3
        ),
        "floor_s": floor_s,
        "floor_rows_per_s": round(rows / floor_s),
        "floor_ratio_to_copy": round(floor_s / baseline, 3),
        "ratio_to_floor": round(ours / floor_s, 3),
        "cpu_ratio_to_floor": round(
            median([c["total"] for c in ours_cpu]) / floors["real"]["median_cpu_s"], 3
        ),
        "floor": floors,
        "ours_stage_s_median": stage_medians,
        "ours_stage_s_runs": stages,
        "breakdown": steps,
        "source": SOURCE,
        **setup,
        "notes": [
            "ours = importers.requests.import_request_file (what manage.py import_requests "
            "runs) into emptied request tables; timed around the call, commit included.",
            "baseline = bare COPY of the same CSV into a fresh 16-text-column table, committed.",
            "rows/s counts every row of the file (imported + rejected), as the importer's own "
            "summary does.",
            "floor = binary COPY of the rows the import wrote (73,800 requests, 147,400 status "
            "events) back into the emptied real tables, with their indexes and the foreign-key "
            "checks, committed: what storing these rows costs whatever computes them. "
            "floor.no_fk: the same into copies of the tables with the same indexes, no FKs.",
            "cpu = CPU seconds of this process + its PostgreSQL backend (from /proc): what a run "
            "costs whatever else shares the cores.",
        ],
        "goal_met": bool(rate >= GOAL_ROWS_PER_S and ratio <= GOAL_RATIO),
    }
    return write_result(
        name=NAME,
        value=round(rate),
        unit="rows/s",
        baseline="bare COPY of the same CSV into a text table",
        baseline_value=round(rows / baseline),
        ratio=ratio,
        goal=f"≥ {GOAL_ROWS_PER_S:,} rows/s and time ratio (ours / COPY) ≤ {GOAL_RATIO:g}",
        details=details,
    )
