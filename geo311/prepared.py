"""Prepared statements on Django's connection, for the few statements that run on every request.

Django binds parameters on the client, so PostgreSQL parses and plans each statement afresh; for
the statements of the request path that costs about as much as running them. These go through a
server-side-binding psycopg cursor that prepares on first use; psycopg keeps the prepared
statement for the life of the connection (persistent: CONN_MAX_AGE). They still pass through
Django's cursor wrapper, so they are logged, counted and wrapped like any other query.
"""

from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _PreparedCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares the statement on first use, unless the
    connection prepares nothing (``DATABASE_PREPARED=false``: behind a pooler that cannot keep
    prepared statements)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> "_PreparedCursor":
        if self.connection.prepare_threshold is not None:
            kwargs["prepare"] = True
        return super().execute(query, params, **kwargs)


class _PreparedDebugCursor(CursorDebugWrapper):
    """Logs the statement as written: psycopg keeps no client-side text of a prepared one, so
    Django's debug cursor would log None."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


def fetch_all(statement: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple]:
    """Run ``statement`` as a prepared statement on the default database; its rows."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the ``connection`` proxy looks it up
    # What Django's own cursor() does first (CONN_HEALTH_CHECKS: at most once per request).
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    if db.execute_wrappers:
        # A wrapper may rewrite the statement: pghistory's context (staff actions, "who")
        # puts a set_config command in front of it, and a server-side-bound statement is one
        # command. Run it as Django runs any other; those paths are not the hot ones.
        with db.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()
    raw = cast(Any, _PreparedCursor(db.connection))
    cursor = _PreparedDebugCursor(raw, db) if db.queries_logged else db.make_cursor(raw)
    with cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()
