"""Django's PostGIS backend, with a connection health check that costs no round trip.

With persistent connections (CONN_MAX_AGE) and CONN_HEALTH_CHECKS, Django checks a connection
before the first query of every request; its PostgreSQL backend does it with ``SELECT 1``, a
round trip that costs about as much as the statement a cached tile or a nearby lookup runs.
Between requests a connection sits idle, and an idle PostgreSQL connection has nothing to say:
when the server ends it (a restart, ``pg_terminate_backend``, idle timeouts, a failover) it
sends an error and closes the socket, so the socket turns readable. That is what this check
looks at, with ``select`` and no wait: a closed or broken psycopg connection, or a readable
socket whose input ends the connection, counts as unusable, and Django opens a new connection
before the request's first query, as after a failed ``SELECT 1``. A connection inside a
transaction is asked with ``SELECT 1`` as before.

One thing an idle connection may be told is a notification: web connections LISTEN for tile
layers and areas (``maps.sql_tiles.stamp``). A readable socket is therefore read (libpq's
PQconsumeInput, no round trip): the connection stays usable when it is still good after that,
and the notifications wait in libpq for the next statement or PQnotifies, as they would have.

What it cannot see is a peer that vanished without closing (a cut cable, a dead host behind
NAT): ``SELECT 1`` would then wait for TCP to give up as well, and TCP keepalives
(``DATABASE_URL`` options ``keepalives_idle`` etc.) are the remedy for both.
"""

import select
from typing import Any

import psycopg
from django.contrib.gis.db.backends.postgis.base import (
    DatabaseWrapper as PostGISDatabaseWrapper,
)
from psycopg.pq import ConnStatus, TransactionStatus


class DatabaseWrapper(PostGISDatabaseWrapper):
    def is_usable(self) -> bool:
        conn: Any = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status != TransactionStatus.IDLE:
            # Inside a transaction (a test case's, say): ask the server, as Django does.
            return bool(super().is_usable())
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        try:
            conn.pgconn.consume_input()  # raises once the server has closed the socket
        except psycopg.OperationalError:
            return False
        return not conn.broken and conn.pgconn.status == ConnStatus.OK
