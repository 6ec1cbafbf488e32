"""The request path's prepared statements: prepared once per connection, and not at all when the
connection prepares nothing (DATABASE_PREPARED=false, behind a pooler that cannot keep them)."""

import pytest
from django.db import connection

from geo311.prepared import fetch_all

pytestmark = pytest.mark.django_db


def _prepared(text: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s AND NOT from_sql",
            [text],
        )
        return cursor.fetchone()[0]


def test_a_statement_is_prepared_on_first_use_and_kept(django_assert_num_queries):
    with django_assert_num_queries(2) as queries:
        assert fetch_all("SELECT %s::int + 1", [1]) == [(2,)]
        assert fetch_all("SELECT %s::int + 1", [41]) == [(42,)]
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT %s::int + 1"] * 2
    assert _prepared("SELECT $1::int + 1") == 1


def test_nothing_is_prepared_when_the_connection_prepares_nothing():
    connection.ensure_connection()
    raw = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, None
    try:
        assert fetch_all("SELECT %s::int + 2", [1]) == [(3,)]
        assert fetch_all("SELECT %s::int + 2", [1]) == [(3,)]
    finally:
        raw.prepare_threshold = threshold
    assert _prepared("SELECT $1::int + 2") == 0
