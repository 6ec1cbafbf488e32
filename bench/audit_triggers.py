"""audit_triggers: what the audit trail's triggers (django-pghistory, geo311.models.audited) cost
the writes of geo311_servicerequest, and what an insert trigger would have cost.

Requests are tracked on update and delete only: the first status event records a request's
creation, so an insert trigger would only copy every POST and every imported row. This measures
that choice on a 74,401-row INSERT ... SELECT (the size of the Chicago import, from a staging
table as the importer inserts):

- **ours**: the project's triggers as migrated (statement-level update and delete events;
  nothing on insert);
- **baseline**: the same statement with the audit triggers disabled;
- **with an insert trigger**: ours plus the statement-level insert trigger pghistory would
  install for ``InsertEvent``, the cost avoided.

Also a bulk UPDATE of the same rows (a real change, and one of ``address_key`` only, which the
trigger's condition skips) and single-row updates (a staff action), each with and without the
triggers; and, on a sample of ``ROW_SAMPLE`` rows, pghistory's default *row-level* triggers for
comparison: each of their calls opens and aborts a subtransaction (the EXCEPTION block of
``_pgh_attach_context()``), and with a bulk INSERT's deferred foreign-key checks queued each
abort costs more than the last (a first run of the 74,401-row insert with a row-level trigger
was cancelled after 11 minutes); that is why ``geo311.models.audited`` uses statement-level
ones.

Every variant runs in its own transaction, rolled back; runs alternate; medians. Backend CPU
seconds (from /proc of the PostgreSQL backend) are kept beside wall seconds: the machine is
shared, the lead reruns on a quiet one.
"""

from __future__ import annotations

import os
import time

from . import common
from .common import log, median, write_result

NAME = "audit_triggers"
ROWS = 74_401
ROW_SAMPLE = 5_000
RUNS = 5
SINGLE_UPDATES = 300
SOURCE = "bench:audit_triggers"
STAGE = "bench_audit_stage"
# The importer's column list (geo311.sql IMPORT_STAGED): what a bulk INSERT names.
COLUMNS = (
    "public_id, token, category_id, department_id, team_id, status_id, location, address, "
    "address_id, zipcode, description, attributes, media_url, channel, service_notice, "
    "reporter_first_name, reporter_last_name, reporter_email, reporter_phone, "
    "reporter_device_id, reporter_account_id, routing_rule_id, routing, requested_at, "
    "updated_at, expected_at, closed_at, source"
)
TABLE = "geo311_servicerequest"
_TICK = os.sysconf("SC_CLK_TCK")


def _backend_cpu(conn) -> float:
    """CPU seconds (user + system) the connection's PostgreSQL backend has used so far."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _ids() -> dict:
    """A department, category and status for the rows (the bench's own, made once)."""
    from geo311.models import Department, ServiceCategory, Status

    department, _ = Department.objects.get_or_create(
        slug="bench-audit", defaults={"name": "Bench (audit triggers)"}
    )
    category, _ = ServiceCategory.objects.get_or_create(
        service_code="BENCH_AUDIT",
        defaults={"name": "Bench (audit triggers)", "default_department": department},
    )
    status = (
        Status.objects.filter(is_initial=True).first()
        or Status.objects.get_or_create(
            code="bench-audit", defaults={"name": "Bench", "open311_status": "open"}
        )[0]
    )
    other = (
        Status.objects.exclude(pk=status.pk).first()
        or Status.objects.get_or_create(
            code="bench-audit-2", defaults={"name": "Bench 2", "open311_status": "open"}
        )[0]
    )
    return {
        "department": department.pk,
        "category": category.pk,
        "status": status.pk,
        "other_status": other.pk,
    }


def _stage(conn, ids: dict) -> None:
    """A staging table of ROWS rows shaped like an import's (points in Chicago, a description,
    an address, answers and a routing record)."""
    conn.execute(f"DROP TABLE IF EXISTS {STAGE}")
    conn.execute(
        f"""
        CREATE TABLE {STAGE} AS
        SELECT 'audit-' || n AS public_id, md5(n::text) AS token,
               %(category)s::bigint AS category_id, %(department)s::bigint AS department_id,
               NULL::bigint AS team_id, %(status)s::bigint AS status_id,
               ST_SetSRID(ST_MakePoint(-87.9 + random() * 0.38, 41.65 + random() * 0.37), 4326)
                   AS location,
               (n %% 9000) || ' W ' || (ARRAY['NORTH', 'DIVISION', 'MADISON'])[1 + n %% 3]
                   || ' AVE' AS address,
               '' AS address_id, '606' || lpad((n %% 60)::text, 2, '0') AS zipcode,
               'Garbage overflowing behind the building, rats seen at night ' || n
                   AS description,
               jsonb_build_object('NATURE', 'overflowing-carts') AS attributes,
               '' AS media_url, 'import' AS channel, '' AS service_notice,
               '' AS reporter_first_name, '' AS reporter_last_name, '' AS reporter_email,
               '' AS reporter_phone, '' AS reporter_device_id, '' AS reporter_account_id,
               NULL::bigint AS routing_rule_id,
               jsonb_build_object('rule', 'category default department', 'boundaries',
                                  jsonb_build_array()) AS routing,
               now() - n * interval '20 minutes' AS requested_at,
               now() - n * interval '20 minutes' AS updated_at,
               NULL::timestamptz AS expected_at, NULL::timestamptz AS closed_at,
               %(source)s AS source
        FROM generate_series(1, %(rows)s) AS n
        """,
        {**ids, "rows": ROWS, "source": SOURCE},
    )
    conn.execute(f"ANALYZE {STAGE}")


def _audit_triggers(conn) -> list[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal "
        "AND tgname LIKE 'pgtrigger_%%' ORDER BY tgname",
        (TABLE,),
    ).fetchall()
    return [r[0] for r in rows]


def _history_columns(conn) -> list[str]:
    """The snapshot columns of geo311_servicerequesthistory (the tracked row's columns)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND column_name NOT LIKE 'pgh\\_%%' ORDER BY ordinal_position",
        (f"{TABLE}history",),
    ).fetchall()
    return [r[0] for r in rows]


def _variant(conn, variant: str, triggers: list[str], columns: list[str]) -> None:
    """Inside the open transaction: switch the audit triggers off, or add pghistory's insert
    trigger (statement level as ours, or row level as pghistory's default), or replace ours by
    a row-level update trigger."""
    cols = ", ".join(f'"{c}"' for c in columns)
    pgh = '"pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id"'
    if variant in ("none", "row_update"):
        for name in triggers:
            conn.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {name}")
    if variant == "with_insert":
        new = ", ".join(f'new_values."{c}"' for c in columns)
        body = (
            "WITH _pgh_attached_context AS (SELECT _pgh_attach_context() AS value) "
            f"INSERT INTO {TABLE}history ({cols}, {pgh}) "
            f"SELECT {new}, _pgh_attached_context.value, NOW(), 'insert', new_values.id "
            "FROM new_values, _pgh_attached_context; RETURN NULL;"
        )
        timing = "REFERENCING NEW TABLE AS new_values FOR EACH STATEMENT"
    elif variant in ("row_insert", "row_update"):
        row = "NEW" if variant == "row_insert" else "OLD"
        values = ", ".join(f'{row}."{c}"' for c in columns)
        label = "insert" if variant == "row_insert" else "update"
        body = (
            f"INSERT INTO {TABLE}history ({cols}, {pgh}) VALUES "
            f"({values}, _pgh_attach_context(), NOW(), '{label}', {row}.id); RETURN NULL;"
        )
        timing = "FOR EACH ROW"
    else:
        return
    event = "UPDATE" if variant == "row_update" else "INSERT"
    conn.execute(
        "CREATE FUNCTION bench_audit() RETURNS trigger LANGUAGE plpgsql AS "
        f"$bench$ BEGIN {body} END $bench$"
    )
    conn.execute(
        f"CREATE TRIGGER bench_audit AFTER {event} ON {TABLE} {timing} "
        "EXECUTE FUNCTION bench_audit()"
    )


def _timed(conn, sql: str, params: dict | None = None) -> tuple[float, float]:
    cpu0, t0 = _backend_cpu(conn), time.perf_counter()
    conn.execute(sql, params or {})
    return time.perf_counter() - t0, _backend_cpu(conn) - cpu0


def _insert_run(conn, variant: str, triggers: list[str], columns: list[str], limit: int = ROWS):
    with conn.transaction(force_rollback=True):
        _variant(conn, variant, triggers, columns)
        return _timed(
            conn,
            f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {STAGE} LIMIT %(n)s",
            {"n": limit},
        )


def _update_run(
    conn, variant: str, triggers: list[str], columns: list[str], change: str, limit: int = ROWS
):
    with conn.transaction(force_rollback=True):
        _variant(conn, variant, triggers, columns)
        return _timed(
            conn,
            f"UPDATE {TABLE} SET {change} WHERE id IN "
            f"(SELECT id FROM {TABLE} WHERE source = %(s)s ORDER BY id LIMIT %(n)s)",
            {"s": SOURCE, "n": limit},
        )


def _single_updates(
    conn, variant: str, triggers: list[str], columns: list[str], ids: dict
) -> tuple[float, float]:
    """Median wall and CPU seconds of one staff-style update (status and updated_at)."""
    pks = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM {TABLE} WHERE source = %s ORDER BY id LIMIT %s",
            (SOURCE, SINGLE_UPDATES),
        ).fetchall()
    ]
    walls, cpus = [], []
    with conn.transaction(force_rollback=True):
        _variant(conn, variant, triggers, columns)
        for pk in pks:
            wall, cpu = _timed(
                conn,
                f"UPDATE {TABLE} SET status_id = %(s)s, updated_at = now() WHERE id = %(id)s",
                {"s": ids["other_status"], "id": pk},
            )
            walls.append(wall)
            cpus.append(cpu)
    return median(walls), sum(cpus) / len(cpus)


def _remove_rows(conn, triggers: list[str]) -> None:
    """Delete the bench's rows without leaving their delete events in the history table."""
    delete_trigger = next(t for t in triggers if t.startswith("pgtrigger_delete_delete_"))
    with conn.transaction():
        conn.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {delete_trigger}")
        conn.execute(f"DELETE FROM {TABLE} WHERE source = %s", (SOURCE,))
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending events before ENABLE
        conn.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {delete_trigger}")
        conn.execute(f"DELETE FROM {TABLE}history WHERE source = %s", (SOURCE,))


def run() -> dict:
    common.setup()
    ids = _ids()
    with common.raw_connection() as conn:
        triggers = _audit_triggers(conn)
        _remove_rows(conn, triggers)
        _stage(conn, ids)
        columns = _history_columns(conn)
        log(f"audit triggers on {TABLE}: {', '.join(triggers)}")
        inserts: dict[str, list[tuple[float, float]]] = {"ours": [], "none": [], "with_insert": []}
        log(f"{RUNS} x 3 INSERT ... SELECT of {ROWS:,} rows, alternating")
        for _ in range(RUNS):
            for variant in inserts:
                inserts[variant].append(_insert_run(conn, variant, triggers, columns))
        log(f"{ROW_SAMPLE:,} rows with a row-level insert trigger (pghistory's default), once")
        sample = {
            v: _insert_run(conn, v, triggers, columns, ROW_SAMPLE)
            for v in ("none", "with_insert", "row_insert")
        }
        # The rows for the update measurements, committed once.
        conn.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {STAGE}")
        conn.execute(f"ANALYZE {TABLE}")
        updates: dict[str, list[tuple[float, float]]] = {}
        changes = {
            "description": "description = description || '.', updated_at = now()",
            "address_key_only": "address_key = upper(address)",
        }
        log(f"{RUNS} x 4 bulk UPDATEs of {ROWS:,} rows")
        for _ in range(RUNS):
            for change, sql in changes.items():
                for variant in ("ours", "none"):
                    updates.setdefault(f"{change}/{variant}", []).append(
                        _update_run(conn, variant, triggers, columns, sql)
                    )
        log(f"{ROW_SAMPLE:,}-row UPDATE with a row-level update trigger, once")
        update_sample = {
            v: _update_run(conn, v, triggers, columns, changes["description"], ROW_SAMPLE)
            for v in ("none", "ours", "row_update")
        }
        log(f"{SINGLE_UPDATES} single-row updates, with and without the triggers")
        single = {v: _single_updates(conn, v, triggers, columns, ids) for v in ("ours", "none")}
        history = conn.execute(
            "SELECT count(*) FROM geo311_servicerequesthistory h JOIN geo311_servicerequest r "
            "ON r.id = h.pgh_obj_id WHERE r.source = %s",
            (SOURCE,),
        ).fetchone()[0]
        _remove_rows(conn, triggers)
        conn.execute(f"DROP TABLE {STAGE}")

    def wall(samples: list[tuple[float, float]]) -> float:
        return round(median([s[0] for s in samples]), 4)

    def cpu(samples: list[tuple[float, float]]) -> float:
        return round(median([s[1] for s in samples]), 4)

    ours, none, with_insert = (wall(inserts[v]) for v in ("ours", "none", "with_insert"))
    return write_result(
        name=NAME,
        value=ours,
        unit=f"s per {ROWS:,}-row INSERT ... SELECT (audit triggers as migrated)",
        baseline="the same INSERT with the audit triggers disabled",
        baseline_value=none,
        goal="ratio <= 1.02: requests get no insert trigger, inserts pay nothing for the trail",
        details={
            "rows": ROWS,
            "runs": RUNS,
            "insert_s": {v: [round(s[0], 4) for s in inserts[v]] for v in inserts},
            "insert_backend_cpu_s_median": {v: cpu(inserts[v]) for v in inserts},
            "insert_with_insert_trigger_s": with_insert,
            "insert_trigger_would_add_s": round(with_insert - none, 4),
            "insert_trigger_would_add_pct": round(100 * (with_insert - none) / none, 1),
            "insert_trigger_would_add_us_per_row": round(1e6 * (with_insert - none) / ROWS, 2),
            "insert_trigger_would_add_backend_cpu_pct": round(
                100 * (cpu(inserts["with_insert"]) - cpu(inserts["none"])) / cpu(inserts["none"]),
                1,
            ),
            f"sample_{ROW_SAMPLE}_rows_insert_s": {v: round(sample[v][0], 4) for v in sample},
            f"sample_{ROW_SAMPLE}_rows_update_s": {
                v: round(update_sample[v][0], 4) for v in update_sample
            },
            "bulk_update_s_median": {k: wall(v) for k, v in updates.items()},
            "bulk_update_backend_cpu_s_median": {k: cpu(v) for k, v in updates.items()},
            "single_update_ms_median": {v: round(1e3 * single[v][0], 4) for v in single},
            "single_update_backend_cpu_ms_mean": {v: round(1e3 * single[v][1], 4) for v in single},
            "history_rows_left_by_committed_rows": history,
            "note": (
                "Each variant in its own transaction, rolled back. Wall times on a machine "
                "shared with other work (see load); backend CPU from /proc. The bulk updates "
                "of address_key alone write no history (the trigger's condition skips it). "
                "row_insert / row_update: pghistory's default row-level triggers on a sample, "
                "once (a subtransaction per row)."
            ),
        },
    )


if __name__ == "__main__":
    run()
