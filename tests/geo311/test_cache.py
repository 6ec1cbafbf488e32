"""The process's copy of the city configuration (geo311.cache): every kind of edit (the admin,
load_city_config, QuerySet.update, raw SQL, a many-to-many change) is seen by the very next
request, and a current copy costs one query."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from boundaries.models import Layer
from geo311.cache import city_config, city_config_unchecked
from geo311.config import city_config_load, read_config
from geo311.models import (
    ApiKey,
    Department,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceRequest,
)
from geo311.sql_requests import config_generation
from tests.conftest import DEMO, LOOP
from tests.geo311.conftest import errors_of, json_of, post

pytestmark = pytest.mark.django_db

LAT, LONG = str(LOOP[0]), str(LOOP[1])


def sidewalk(api_key: ApiKey, **extra: object) -> dict[str, object]:
    """A valid POST: SIDEWALK has no questions and no rule (its default department serves)."""
    return {"api_key": api_key.key, "service_code": "SIDEWALK", "lat": LAT, "long": LONG, **extra}


def filed(response: Any) -> ServiceRequest:
    assert response.status_code == 201, response.content
    return ServiceRequest.objects.select_related("department").get(
        public_id=json_of(response)[0]["service_request_id"]
    )


def test_a_current_copy_costs_one_query_or_none(chicago_city, django_assert_num_queries):
    first = city_config()
    with django_assert_num_queries(1):
        assert city_config() is first
    with django_assert_num_queries(0):
        assert city_config(generation=first.generation) is first
        assert city_config_unchecked() is first


def test_a_warm_post_is_three_statements(
    client: Client, chicago_city, api_key, django_assert_num_queries
):
    filed(post(client, sidewalk(api_key)))  # loads the copy and records the key's use
    # The areas at the point (with the configuration's generation), the duplicate candidates,
    # and the request with its first event in one INSERT; in a test the transaction is a
    # savepoint, released at the end.
    with django_assert_num_queries(5) as queries:
        response = post(client, sidewalk(api_key))
    filed(response)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements == ["SAVEPOINT", "SELECT", "SELECT", "WITH", "RELEASE"]
    assert "geo311_config_generation" in queries.captured_queries[1]["sql"]


def test_an_error_costs_one_query_more(
    client: Client, chicago_city, api_key, django_assert_num_queries
):
    filed(post(client, sidewalk(api_key)))
    with django_assert_num_queries(1):  # is the copy that refused the key current?
        response = post(client, {**sidewalk(api_key), "api_key": "wrong"})
    assert response.status_code == 403


def _deactivate_in_admin(admin_client: Client, api_key: ApiKey) -> None:
    page = admin_client.post(
        f"/admin/geo311/apikey/{api_key.pk}/change/",
        {"key": api_key.key, "name": api_key.name, "contact": "", "_save": "Save"},
    )
    assert page.status_code == 302


def test_a_key_switched_off_in_the_admin_is_refused_at_once(
    client: Client, admin_client: Client, chicago_city, api_key
):
    filed(post(client, sidewalk(api_key)))
    _deactivate_in_admin(admin_client, api_key)
    response = post(client, sidewalk(api_key))
    assert response.status_code == 403
    assert errors_of(response) == [(403, "api_key: not a valid key (unknown or switched off)")]


def test_a_new_key_is_taken_at_once(client: Client, chicago_city, api_key):
    filed(post(client, sidewalk(api_key)))
    newer = ApiKey.objects.create(name="a new client")
    filed(post(client, sidewalk(newer)))


def test_a_rule_changed_in_the_admin_routes_the_next_request(
    client: Client, admin_client: Client, chicago_city, api_key
):
    data = {**sidewalk(api_key), "service_code": "MISSED_PICKUP"}
    assert filed(post(client, data)).department.slug == "streets-sanitation"
    rule = RoutingRule.objects.get(group="Sanitation", layer__slug="wards", boundary_code="")
    parks = Department.objects.get(slug="parks")
    page = admin_client.post(
        f"/admin/geo311/routingrule/{rule.pk}/change/",
        {
            "category": "",
            "group": "Sanitation",
            "layer": rule.layer_id,
            "boundary_code": "",
            "department": parks.pk,
            "team": "",
            "priority": "0",
            "note": "moved to parks",
            "_save": "Save",
        },
    )
    assert page.status_code == 302, page.content
    assert filed(post(client, data)).department == parks


def _required(code: str, question: str) -> None:
    ServiceAttribute.objects.filter(category__service_code=code, code=question).update(
        required=True
    )


def _retired(code: str, _question: str) -> None:
    ServiceCategory.objects.filter(service_code=code).update(active=False)


def _raw_sql_required(code: str, question: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE geo311_serviceattribute a SET required = true FROM geo311_servicecategory c "
            "WHERE c.id = a.category_id AND c.service_code = %s AND a.code = %s",
            [code, question],
        )


def _reloaded_required(code: str, question: str) -> None:
    data = copy.deepcopy(read_config(DEMO / "city.yaml"))
    (category,) = [c for c in data["categories"] if c["code"] == code]
    (attribute,) = [a for a in category["attributes"] if a["code"] == question]
    attribute["required"] = True
    city_config_load(data=data)


HOW_MANY_REQUIRED = "attribute[HOW_MANY]: required: How many potholes are there?"


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        pytest.param(_required, HOW_MANY_REQUIRED, id="queryset-update"),
        pytest.param(_raw_sql_required, HOW_MANY_REQUIRED, id="raw-sql"),
        pytest.param(_reloaded_required, HOW_MANY_REQUIRED, id="load_city_config"),
        pytest.param(_retired, "service_code: POTHOLE is not taken any more", id="retired"),
    ],
)
def test_an_edit_of_the_service_definition_is_seen_by_the_next_request(
    client: Client, chicago_city, api_key, edit: Callable[[str, str], None], error: str
):
    data = {**sidewalk(api_key), "service_code": "POTHOLE", "attribute[WHERE]": "street"}
    filed(post(client, data))
    edit("POTHOLE", "HOW_MANY")
    assert errors_of(post(client, data)) == [(400, error)]


def test_a_required_layer_added_is_seen_by_the_next_request(client: Client, chicago_city, api_key):
    filed(post(client, sidewalk(api_key, lat="41.66", long="-87.6")))
    # Take the beats out of the way at that point: a category that needs them is refused there.
    ServiceCategory.objects.get(service_code="SIDEWALK").required_layers.add(
        Layer.objects.get(slug="police-beats")
    )
    Layer.objects.filter(slug="police-beats").update(slug="maintenance-zones")
    filed(post(client, sidewalk(api_key, lat="41.66", long="-87.6")))  # in a beat: still served
    Layer.objects.get(slug="maintenance-zones").versions.update(status="retired")
    assert errors_of(post(client, sidewalk(api_key, lat="41.66", long="-87.6"))) == [
        (
            400,
            "lat/long: the location is outside every maintenance-zones area, so "
            "'Sidewalk damage' cannot be routed there",
        )
    ]


def test_recording_a_key_use_leaves_the_generation_alone(client: Client, chicago_city, api_key):
    filed(post(client, sidewalk(api_key)))
    before = config_generation()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=None)
    assert config_generation() == before
    ApiKey.objects.filter(pk=api_key.pk).update(name="renamed")  # not cached either
    assert config_generation() == before
    ApiKey.objects.filter(pk=api_key.pk).update(active=False)
    assert config_generation() != before


def test_a_rolled_back_edit_never_hands_its_number_to_another_configuration(chicago_city):
    before = config_generation()
    savepoint = transaction.savepoint()
    ServiceCategory.objects.filter(service_code="POTHOLE").update(name="Hole")
    inside = config_generation()
    assert inside != before
    assert city_config().categories["POTHOLE"].name == "Hole"  # the writer sees its own edit
    transaction.savepoint_rollback(savepoint)
    assert config_generation() == before
    assert city_config().categories["POTHOLE"].name == "Pothole in street"
    ServiceCategory.objects.filter(service_code="POTHOLE").update(name="Crater")
    assert config_generation() not in (before, inside)
    assert city_config().categories["POTHOLE"].name == "Crater"
