"""The staff API: who may read and do what (every role against every kind of request), the
queue and its filters, and the actions through HTTP with token or session authentication."""

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from django.test import Client
from django.utils import timezone

from geo311.models import ServiceCategory, ServiceRequest, Status
from geo311.roles import CALL_TAKER, CREW, DEPARTMENT_STAFF, GIS_ADMIN, MANAGER
from geo311.services import Actor, Reporter, request_assign, request_create, request_follow
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff"
WARD_42 = Point(-87.6230, 41.8850, srid=4326)
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)  # ward 1
CALLER = Reporter(first_name="Grace", email="grace.private@example.org", phone="312-555-0142")


def file(code: str, point: Point = WARD_42, **extra: Any) -> ServiceRequest:
    answers = {"SAN_CODE": {"NATURE": ["overflowing-carts"]}, "POTHOLE": {"WHERE": ["street"]}}
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        answers=answers.get(code, {}),
        **extra,
    )


@pytest.fixture
def city(chicago_city) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two departments' requests and one user of every role."""
    users = {
        "sanitation": staff_user("sanitation", DEPARTMENT_STAFF, "streets-sanitation"),
        "roads": staff_user("roads", DEPARTMENT_STAFF, "transportation"),
        "crew": staff_user("crew", CREW, "streets-sanitation", "ward-crews"),
        "loop_crew": staff_user("loopcrew", CREW, "streets-sanitation", "loop-crew"),
        "calltaker": staff_user("calltaker", CALL_TAKER),
        "other_calltaker": staff_user("calltaker2", CALL_TAKER),
        "manager": staff_user("manager", MANAGER),
        "gis": staff_user("gis", GIS_ADMIN),
        "resident": User.objects.create_user("resident", password="pw"),
        "root": User.objects.create_superuser("root", password="pw"),
    }
    requests = {
        # Ward 42: routed to the loop crew's team.
        "sanitation_loop": file("SAN_CODE", reporter=CALLER),
        # Ward 1: the ward crews' team, assigned to "crew" below.
        "sanitation_assigned": file("SAN_CODE", point=WICKER_PARK),
        "roads": file("POTHOLE", point=WICKER_PARK),
        "filed_by_phone": file("POTHOLE", filed_by=users["calltaker"], reporter=CALLER),
    }
    request_assign(
        request=requests["sanitation_assigned"],
        actor=Actor(user=users["sanitation"]),
        assignee=users["crew"],
    )
    return {"users": users, "requests": requests}


def as_user(client: Client, user: User | None) -> Client:
    if user is not None:
        client.force_login(user)
    return client


# Who may read each request's private details (everyone else gets 403; anonymous 401).
READERS = {
    "sanitation_loop": {"sanitation", "loop_crew", "manager", "root"},
    "sanitation_assigned": {"sanitation", "crew", "manager", "root"},
    "roads": {"roads", "manager", "root"},
    "filed_by_phone": {"roads", "calltaker", "manager", "root"},
}
USERS = [
    "sanitation",
    "roads",
    "crew",
    "loop_crew",
    "calltaker",
    "other_calltaker",
    "manager",
    "gis",
    "resident",
    "root",
]


@pytest.mark.parametrize("who", USERS)
def test_private_details_only_for_those_who_work_on_the_request(client: Client, city, who):
    user = city["users"][who]
    as_user(client, user)
    for name, request in city["requests"].items():
        response = client.get(f"{BASE}/requests/{request.public_id}")
        if who in READERS[name]:
            assert response.status_code == 200, (who, name)
            body = response.json()
            assert body["service_request_id"] == request.public_id
            assert set(body["reporter"]) >= {"email", "phone"}
        else:
            assert response.status_code == 403, (who, name, response.content)
            assert "grace.private" not in response.content.decode()
        assert user.has_perm("geo311.view_request_private", request) == (who in READERS[name])


@pytest.mark.parametrize("who", USERS)
def test_the_queue_lists_exactly_the_requests_the_user_may_read(client: Client, city, who):
    as_user(client, city["users"][who])
    response = client.get(f"{BASE}/requests")
    if who in ("gis", "resident"):  # no staff role for the queue
        assert response.status_code == 403
        return
    assert response.status_code == 200
    listed = {row["service_request_id"] for row in response.json()["results"]}
    expected = {r.public_id for n, r in city["requests"].items() if who in READERS[n]}
    assert listed == expected


def test_anonymous_callers_are_told_to_authenticate(client: Client, city):
    request = city["requests"]["roads"]
    for path in ("requests", f"requests/{request.public_id}"):
        assert client.get(f"{BASE}/{path}").status_code == 401
    response = client.post(f"{BASE}/requests/{request.public_id}/notes", {"public_note": "x"})
    assert response.status_code == 401


def test_unknown_requests_are_404_naming_the_id(client: Client, city):
    as_user(client, city["users"]["manager"])
    response = client.get(f"{BASE}/requests/nope")
    assert response.status_code == 404
    assert response.json() == {"service_request_id": "no request nope"}


# Which roles may do what to the assigned sanitation request (the crew's own work).
ACTIONS = {
    "transition": ({"status": "in-progress"}, {"sanitation", "crew", "manager", "root"}),
    "notes": ({"internal_note": "gate code 4321"}, {"sanitation", "crew", "manager", "root"}),
    "assign": ({"team": "loop-crew"}, {"sanitation", "manager", "root"}),
    "move": ({"lat": 41.9090, "long": -87.6770}, {"sanitation", "manager", "root"}),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize(
    "who", ["sanitation", "roads", "crew", "loop_crew", "calltaker", "manager", "root"]
)
def test_actions_by_role(client: Client, city, action, who):
    request = city["requests"]["sanitation_assigned"]
    data, allowed = ACTIONS[action]
    as_user(client, city["users"][who])
    response = client.post(
        f"{BASE}/requests/{request.public_id}/{action}", data, content_type="application/json"
    )
    assert response.status_code == (200 if who in allowed else 403), response.content


def test_merge_by_role_needs_to_run_the_duplicate(client: Client, city):
    duplicate = city["requests"]["sanitation_loop"]
    parent = city["requests"]["sanitation_assigned"]
    data = {"parent_service_request_id": parent.public_id}
    url = f"{BASE}/requests/{duplicate.public_id}/merge"
    for who in ("roads", "crew", "loop_crew", "calltaker"):
        as_user(client, city["users"][who])
        assert client.post(url, data, content_type="application/json").status_code == 403, who
    as_user(client, city["users"]["sanitation"])
    response = client.post(url, data, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["open311_status"]) == ("duplicate", "closed")
    assert body["event"]["kind"] == "merged"
    assert body["event"]["details"] == {"parent": parent.public_id}


def test_token_authentication_for_apps(client: Client, city):
    response = client.post(f"{BASE}/token", {"username": "crew", "password": "pw-crew"})
    assert response.status_code == 200
    token = response.json()["token"]
    app = Client(HTTP_AUTHORIZATION=f"Token {token}")
    listed = app.get(f"{BASE}/requests")
    assert listed.status_code == 200
    assert [r["service_request_id"] for r in listed.json()["results"]] == [
        city["requests"]["sanitation_assigned"].public_id
    ]
    assert Client(HTTP_AUTHORIZATION="Token wrong").get(f"{BASE}/requests").status_code == 401
    wrong = client.post(f"{BASE}/token", {"username": "crew", "password": "nope"})
    assert wrong.status_code == 400


def test_a_crew_sets_on_site_then_completed_with_a_note_and_photo(client: Client, city):
    request = city["requests"]["sanitation_assigned"]
    as_user(client, city["users"]["crew"])
    url = f"{BASE}/requests/{request.public_id}/transition"
    for code in ("on-site", "completed"):
        if code == "on-site":
            # assigned → on-site is allowed; the request is still "submitted" first.
            first = client.post(url, {"status": "assigned"}, content_type="application/json")
            assert first.status_code == 200, first.content
        response = client.post(
            url,
            {
                "status": code,
                "public_note": "Carts emptied" if code == "completed" else "",
                "internal_note": "2 bags left by the gate",
                "photo_url": "https://photos.example.org/done.jpg",
            },
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
    event = response.json()["event"]
    assert (event["status"], event["previous_status"], event["actor"]) == (
        "completed",
        "on-site",
        "crew",
    )
    assert event["photo_url"] == "https://photos.example.org/done.jpg"
    public = client.get(f"/open311/v2/requests/{request.public_id}.json?extensions=true").json()[0]
    assert public["status"] == "closed"
    assert public["status_notes"] == "Carts emptied"
    assert public["extended_attributes"]["notes"][-1]["media_url"] == event["photo_url"]
    assert "2 bags" not in str(public)


def test_a_refused_transition_names_the_field_and_what_is_allowed(client: Client, city):
    request = city["requests"]["roads"]
    as_user(client, city["users"]["roads"])
    response = client.post(
        f"{BASE}/requests/{request.public_id}/transition",
        {"status": "completed"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "status": [
            "'submitted' cannot change to 'completed' (allowed: acknowledged, assigned, "
            "in-progress, rejected, not-our-responsibility)"
        ]
    }
    unknown = client.post(
        f"{BASE}/requests/{request.public_id}/transition",
        {"status": "fixed"},
        content_type="application/json",
    )
    assert unknown.json() == {"status": ["no status 'fixed'"]}


def test_detail_shows_private_fields_history_and_allowed_statuses(client: Client, city):
    request = city["requests"]["sanitation_loop"]
    request_follow(request=request, email="neighbour@example.org")
    as_user(client, city["users"]["sanitation"])
    client.post(
        f"{BASE}/requests/{request.public_id}/notes",
        {"internal_note": "landlord called twice"},
        content_type="application/json",
    )
    body = client.get(f"{BASE}/requests/{request.public_id}").json()
    assert body["reporter"]["email"] == "grace.private@example.org"
    assert body["allowed_statuses"] == [
        "acknowledged",
        "assigned",
        "in-progress",
        "rejected",
        "not-our-responsibility",
    ]
    assert [e["kind"] for e in body["events"]] == ["created", "note"]
    assert body["events"][1]["internal_note"] == "landlord called twice"
    assert body["events"][1]["public"] is False
    assert body["followers"] == 1
    assert body["expected_datetime"] is not None


def test_history_says_who_changed_what_before_and_after(client: Client, city):
    request = city["requests"]["sanitation_assigned"]
    as_user(client, city["users"]["sanitation"])
    body = client.get(f"{BASE}/requests/{request.public_id}/history").json()
    [assignment] = body
    assert (assignment["action"], assignment["actor"]) == ("update", "sanitation")
    assert assignment["user_id"] == city["users"]["sanitation"].pk
    changes = {c["field"]: (c["before"], c["after"]) for c in assignment["changes"]}
    assert changes["assignee_id"] == (None, city["users"]["crew"].pk)


def test_a_call_taker_files_for_a_caller_and_finds_it_in_their_queue(client: Client, city):
    as_user(client, city["users"]["calltaker"])
    response = client.post(
        f"{BASE}/requests/file",
        {
            "service_code": "SAN_CODE",
            "lat": WARD_42.y,
            "long": WARD_42.x,
            "attributes": {"NATURE": "garbage-in-alley"},
            "first_name": "Alan",
            "phone": "312-555-0177",
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    stored = ServiceRequest.objects.get(public_id=created["service_request_id"])
    assert (stored.channel, stored.filed_by, stored.reporter_phone) == (
        "phone",
        city["users"]["calltaker"],
        "312-555-0177",
    )
    queue = client.get(f"{BASE}/requests").json()["results"]
    assert created["service_request_id"] in {r["service_request_id"] for r in queue}
    as_user(client, city["users"]["other_calltaker"])
    assert client.get(f"{BASE}/requests/{stored.public_id}").status_code == 403


def test_filing_for_a_caller_names_what_is_wrong(client: Client, city):
    as_user(client, city["users"]["calltaker"])
    url = f"{BASE}/requests/file"
    outside = {"service_code": "SAN_CODE", "lat": 40.0, "long": -80.0}
    response = client.post(url, outside, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()) == ["attribute[NATURE]"]
    outside["attributes"] = {"NATURE": "other"}
    response = client.post(url, outside, content_type="application/json")
    assert response.json() == {"lat": ["the location is outside the area this service covers"]}
    both = {"service_code": "SAN_CODE", "lat": 41.9, "long": -87.6, "address_string": "1 N State"}
    response = client.post(url, both, content_type="application/json")
    assert "one of them" in response.json()["lat"][0]
    as_user(client, city["users"]["crew"])
    assert client.post(url, {}, content_type="application/json").status_code == 403


# --- queue filters --------------------------------------------------------------------------


def queue(client: Client, **params: Any) -> list[str]:
    response = client.get(f"{BASE}/requests", params)
    assert response.status_code == 200, response.content
    return sorted(r["service_request_id"] for r in response.json()["results"])


def test_queue_filters(client: Client, city):
    reqs = city["requests"]
    as_user(client, city["users"]["manager"])
    old = reqs["roads"]
    ServiceRequest.objects.filter(pk=old.pk).update(
        requested_at=timezone.now() - dt.timedelta(days=10),
        expected_at=timezone.now() - dt.timedelta(days=7),
    )
    ids = {name: r.public_id for name, r in reqs.items()}
    assert queue(client, service_code="POTHOLE") == sorted([ids["roads"], ids["filed_by_phone"]])
    assert queue(client, department="streets-sanitation") == sorted(
        [ids["sanitation_loop"], ids["sanitation_assigned"]]
    )
    assert queue(client, boundary="wards:42") == sorted(
        [ids["sanitation_loop"], ids["filed_by_phone"]]
    )
    assert queue(client, min_age_days=5) == [ids["roads"]]
    assert ids["roads"] not in queue(client, max_age_days=5)
    assert queue(client, overdue="true") == [ids["roads"]]
    assert ids["roads"] not in queue(client, overdue="false")
    assert queue(client, assignee="crew") == [ids["sanitation_assigned"]]
    assert queue(client, team="loop-crew") == [ids["sanitation_loop"]]
    ServiceRequest.objects.filter(pk=old.pk).update(status=Status.objects.get(code="completed"))
    assert queue(client, status="completed") == [ids["roads"]]
    assert ids["roads"] not in queue(client, open="true")
    assert queue(client, overdue="true") == []  # closed: no longer late
    bad = client.get(f"{BASE}/requests", {"boundary": "wards:999"})
    assert bad.status_code == 400
    assert "no active boundary '999' in layer 'wards'" in bad.json()["boundary"][0]


def test_queue_rows_say_overdue_and_links(client: Client, city):
    as_user(client, city["users"]["manager"])
    roads = city["requests"]["roads"]
    ServiceRequest.objects.filter(pk=roads.pk).update(
        expected_at=timezone.now() - dt.timedelta(hours=1)
    )
    rows = {r["service_request_id"]: r for r in client.get(f"{BASE}/requests").json()["results"]}
    assert rows[roads.public_id]["overdue"] is True
    assert rows[city["requests"]["sanitation_loop"].public_id]["overdue"] is False
    assert rows[city["requests"]["sanitation_assigned"].public_id]["assignee"] == "crew"


def test_queue_query_count_does_not_grow_with_the_page(
    client: Client, city, django_assert_num_queries
):
    token_client = Client()
    token = token_client.post(
        f"{BASE}/token", {"username": "sanitation", "password": "pw-sanitation"}
    ).json()["token"]
    app = Client(HTTP_AUTHORIZATION=f"Token {token}")
    # token and user, the user's groups, their staff profile, the count, the page; and the
    # savepoint pair of ATOMIC_REQUESTS' transaction (inside the test's own)
    with django_assert_num_queries(7):
        assert app.get(f"{BASE}/requests").json()["count"] == 2
    for _ in range(12):
        file("SAN_CODE")
    with django_assert_num_queries(7):
        body = app.get(f"{BASE}/requests", {"page_size": 10}).json()
    assert (body["count"], len(body["results"])) == (14, 10)
