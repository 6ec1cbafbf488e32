"""A real gunicorn process keeps its copy of the city configuration between requests; an edit
committed by another connection (as the admin or load_city_config would commit it) is seen by
the server's very next request, and undoing the edit is seen as quickly."""

import json

import psycopg
import pytest
from django.db import connection

from geo311.models import Department, RoutingRule
from tests.conftest import LOOP
from tests.geo311.conftest import call

pytestmark = pytest.mark.django_db


def commit(sql: str, params: list[object]) -> None:
    """Run ``sql`` on a connection of its own and commit it, as another process would."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        autocommit=True,
    ) as other:
        other.execute(sql, params)


def _department_of(base: str, answer: object) -> str:
    (created,) = json.loads(answer.body)  # type: ignore[attr-defined]
    read = call(f"{base}/open311/v2/requests/{created['service_request_id']}.json")
    (request,) = json.loads(read.body)
    return str(request["agency_responsible"])


def test_a_committed_edit_is_seen_by_the_servers_next_request(server):  # type: ignore[no-untyped-def]
    base, key = server
    url = f"{base}/open311/v2/requests.json"
    form = {"api_key": key, "service_code": "MISSED_PICKUP", "lat": LOOP[0], "long": LOOP[1]}
    first = call(url, form)  # the single worker loads its copy
    assert first.status == 201, first.body
    assert _department_of(base, first) == "Streets & Sanitation"

    rule = RoutingRule.objects.get(group="Sanitation", layer__slug="wards", boundary_code="")
    move = "UPDATE geo311_routingrule SET department_id = %s WHERE id = %s"
    commit(move, [Department.objects.get(slug="parks").pk, rule.pk])
    try:
        assert _department_of(base, call(url, form)) == "Chicago Park District"
    finally:
        commit(move, [rule.department_id, rule.pk])
    assert _department_of(base, call(url, form)) == "Streets & Sanitation"

    switch = "UPDATE geo311_apikey SET active = %s WHERE key = %s"
    commit(switch, [False, key])
    try:
        refused = call(url, form)
    finally:
        commit(switch, [True, key])
    assert refused.status == 403
    assert call(url, form).status == 201
