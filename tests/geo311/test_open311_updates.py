"""Open311 extensions of the lifecycle: updates posted by external systems (an update id is not
accepted twice), the nearby requests of a request, merge links in extended_attributes."""

from urllib.parse import urlencode

import pytest
from django.contrib.gis.geos import Point
from django.test import Client

from geo311.models import ApiKey, Department, ServiceCategory, ServiceRequest, StatusEvent
from geo311.roles import DEPARTMENT_STAFF
from geo311.services import Actor, Reporter, request_create, request_follow, request_merge
from tests.factories import staff_user
from tests.geo311.conftest import BASE, FORM, REPORTER, errors_of, json_of, xml_of

pytestmark = pytest.mark.django_db

WARD_42 = Point(-87.6230, 41.8850, srid=4326)
NEARBY = Point(-87.6231, 41.8851, srid=4326)  # about 14 m away


def filed(point: Point = WARD_42, description: str = "Carts overflowing") -> ServiceRequest:
    return request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=point,
        description=description,
        answers={"NATURE": ["overflowing-carts"]},
        reporter=Reporter(**REPORTER),  # type: ignore[arg-type]
    )


@pytest.fixture
def work_orders(chicago_city) -> ApiKey:  # type: ignore[no-untyped-def]
    return ApiKey.objects.create(name="Work orders", may_post_updates=True)


def post_update(client: Client, key: ApiKey, fmt: str = "json", **data: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"{BASE}/servicerequestupdates.{fmt}",
        urlencode({"api_key": key.key, **data}),
        content_type=FORM,
    )


def test_an_external_status_update_changes_the_request_once(client: Client, work_orders):
    request = filed()
    response = post_update(
        client,
        work_orders,
        service_request_id=request.public_id,
        update_id="WO-1001",
        status="IN_PROGRESS",
        description="Crew dispatched",
        media_url="https://cmms.example.org/wo/1001.jpg",
    )
    assert response.status_code == 201, response.content
    (update,) = json_of(response)
    assert (update["status"], update["detailed_status"]) == ("open", "in-progress")
    assert update["service_request_id"] == request.public_id
    assert update["description"] == "Crew dispatched"
    assert update["media_url"] == "https://cmms.example.org/wo/1001.jpg"
    event = StatusEvent.objects.get(pk=int(update["update_id"]))
    assert (event.external_id, event.api_key, event.actor) == (
        "WO-1001",
        work_orders,
        "api key: Work orders",
    )
    feed = json_of(client.get(f"{BASE}/servicerequestupdates.json"))
    assert update in feed

    again = post_update(
        client,
        work_orders,
        service_request_id=request.public_id,
        update_id="WO-1001",
        description="Crew dispatched (retry)",
    )
    assert again.status_code == 400
    assert errors_of(again) == [
        (400, "update_id: update WO-1001 was already accepted; it is not taken twice")
    ]
    assert StatusEvent.objects.filter(request=request, external_id="WO-1001").count() == 1


def test_the_same_update_id_from_another_system_is_its_own(client: Client, work_orders):
    request = filed()
    other = ApiKey.objects.create(name="Permits", may_post_updates=True)
    for key in (work_orders, other):
        response = post_update(
            client, key, service_request_id=request.public_id, update_id="7", description="seen"
        )
        assert response.status_code == 201


def test_external_updates_follow_the_transition_rules(client: Client, work_orders):
    request = filed()
    response = post_update(
        client,
        work_orders,
        "xml",
        service_request_id=request.public_id,
        update_id="1",
        status="completed",
    )
    assert response.status_code == 400
    assert errors_of(response) == [
        (
            400,
            "status: 'submitted' cannot change to 'completed' (allowed: acknowledged, "
            "assigned, in-progress, rejected, not-our-responsibility)",
        )
    ]
    unknown = post_update(
        client, work_orders, service_request_id=request.public_id, update_id="2", status="FIXED"
    )
    assert "status: not a status of this city: 'FIXED'" in errors_of(unknown)[0][1]
    # A refused update does not use up its id.
    fine = post_update(
        client,
        work_orders,
        service_request_id=request.public_id,
        update_id="1",
        status="acknowledged",
    )
    assert fine.status_code == 201
    assert (
        xml_of(
            post_update(
                client,
                work_orders,
                "xml",
                service_request_id=request.public_id,
                update_id="3",
                description="note",
            )
        ).tag
        == "service_request_updates"
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [("no key", 403), ("read-only key", 403), ("other department", 403), ("unknown request", 404)],
)
def test_who_may_post_updates(client: Client, work_orders, case, code):
    request = filed()
    key = work_orders
    target = request.public_id
    if case == "no key":
        key = ApiKey(key="")
    elif case == "read-only key":
        key = ApiKey.objects.create(name="A resident app")
    elif case == "other department":
        key = ApiKey.objects.create(
            name="Roads CMMS",
            may_post_updates=True,
            department=Department.objects.get(slug="transportation"),
        )
    else:
        target = "999999999"
    response = post_update(client, key, service_request_id=target, update_id="1", description="x")
    assert response.status_code == code
    assert errors_of(response)[0][0] == code
    assert not StatusEvent.objects.filter(external_id="1").exists()


# --- nearby ---------------------------------------------------------------------------------


def test_nearby_of_a_request_lists_what_it_may_repeat_without_personal_data(
    client: Client, chicago_city
):
    earlier = filed()
    later = filed(point=NEARBY)
    response = client.get(f"{BASE}/requests/{later.public_id}/nearby.json")
    assert response.status_code == 200
    (candidate,) = json_of(response)  # not itself, nothing filed after it
    assert candidate["service_request_id"] == earlier.public_id
    assert set(candidate) == {
        "service_request_id",
        "service_code",
        "service_name",
        "status",
        "requested_datetime",
        "address",
        "lat",
        "long",
        "distance_m",
        "score",
        "likely",
        "reasons",
    }
    assert 10 < candidate["distance_m"] < 20
    assert "same category" in candidate["reasons"]
    assert json_of(client.get(f"{BASE}/requests/{earlier.public_id}/nearby.json")) == []
    root = xml_of(client.get(f"{BASE}/requests/{later.public_id}/nearby.xml"))
    assert root.tag == "nearby_requests"
    assert root.findtext("request/service_request_id") == earlier.public_id
    for response in (
        client.get(f"{BASE}/requests/{later.public_id}/nearby.json"),
        client.get(f"{BASE}/requests/{later.public_id}/nearby.xml"),
    ):
        text = response.content.decode()
        assert not any(str(value) in text for value in REPORTER.values())
        assert "Carts overflowing" not in text  # descriptions stay out too
        assert later.token not in text
        assert earlier.token not in text
    missing = client.get(f"{BASE}/requests/999999999/nearby.json")
    assert missing.status_code == 404


def test_extensions_show_merge_links_and_the_follower_count(client: Client, chicago_city):
    original, duplicate = filed(), filed(point=NEARBY)
    request_follow(request=original, email="neighbour@example.org")
    clerk = staff_user("clerk", DEPARTMENT_STAFF, "streets-sanitation")
    request_merge(duplicate=duplicate, parent=original, actor=Actor(user=clerk))
    (parent,) = json_of(
        client.get(f"{BASE}/requests/{original.public_id}.json", {"extensions": "true"})
    )
    (child,) = json_of(
        client.get(f"{BASE}/requests/{duplicate.public_id}.json", {"extensions": "true"})
    )
    assert parent["extended_attributes"]["duplicates"] == [duplicate.public_id]
    assert parent["extended_attributes"]["parent_service_request_id"] is None
    # The neighbour; the duplicate's reporter is the original's own, so not a follower too.
    assert parent["extended_attributes"]["followers"] == 1
    assert child["extended_attributes"]["parent_service_request_id"] == original.public_id
    assert child["status"] == "closed"
    assert child["extended_attributes"]["detailed_status"]["code"] == "duplicate"
    assert original.public_id in child["status_notes"]
    # The merged duplicate is no longer offered as a repeat of anything.
    third = filed(point=NEARBY)
    nearby = json_of(client.get(f"{BASE}/requests/{third.public_id}/nearby.json"))
    assert [c["service_request_id"] for c in nearby] == [original.public_id]
