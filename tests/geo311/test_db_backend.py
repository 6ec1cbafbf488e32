"""geo311.db: the health check of an idle persistent connection asks the socket, not the
server, and still finds a connection the server has ended."""

import select
import time

import pytest
from django.db import connection, connections


@pytest.fixture
def second(transactional_db):  # type: ignore[no-untyped-def]
    """Another connection to the test database, outside any transaction, with health checks."""
    other = connection.copy()
    other.health_check_enabled = True
    other.ensure_connection()
    yield other
    other.close()


def _server_pid(conn) -> int:  # type: ignore[no-untyped-def]
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _statements_on(pid: int) -> object:
    """When the backend ``pid`` last changed state: every statement it runs moves it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT state_change FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0]


def test_the_engine_is_geo311s():
    assert connection.settings_dict["ENGINE"] == "geo311.db"
    assert type(connections["default"]).__module__ == "geo311.db.base"


def test_an_idle_live_connection_is_usable_without_a_statement(second):
    pid = _server_pid(second)
    before = _statements_on(pid)
    time.sleep(0.01)
    assert second.is_usable()
    assert _statements_on(pid) == before  # the server was not asked anything


def test_a_connection_the_server_ended_is_found_and_replaced(second):
    pid = _server_pid(second)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0]
    deadline = time.monotonic() + 5
    while second.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not second.is_usable()

    # What Django does before a request's first query: a new connection, and the query works.
    second.health_check_done = False
    second.close_if_health_check_failed()
    assert second.connection is None
    assert _server_pid(second) != pid


def test_inside_a_transaction_the_server_is_asked(second):
    pid = _server_pid(second)
    second.set_autocommit(False)
    try:
        with second.cursor() as cursor:
            cursor.execute("SELECT 1")
        before = _statements_on(pid)
        time.sleep(0.01)
        assert second.is_usable()
        assert _statements_on(pid) != before
    finally:
        second.rollback()
        second.set_autocommit(True)


def test_a_listening_connection_told_of_a_commit_stays_usable(second):
    """Web connections LISTEN (tile generations): a notification makes the idle socket
    readable, and is kept for the connection's next statement, not taken for a dead server."""
    heard: list[str] = []
    second.connection.add_notify_handler(lambda notify: heard.append(notify.payload))
    with second.cursor() as cursor:
        cursor.execute("LISTEN geo311_test")
    pid = _server_pid(second)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('geo311_test', 'committed')")
    deadline = time.monotonic() + 5
    while not select.select([second.connection.fileno()], [], [], 0.01)[0]:
        assert time.monotonic() < deadline, "the notification never arrived"
    before = _statements_on(pid)
    time.sleep(0.01)
    assert second.is_usable()
    assert _statements_on(pid) == before
    second.health_check_done = False
    second.close_if_health_check_failed()
    assert _server_pid(second) == pid  # the same connection
    assert heard == ["committed"]
