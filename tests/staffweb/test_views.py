"""The staff pages through Django's test client: who may open them (anonymous users are sent
to sign in, non-staff get 403, a crew of another department sees nothing of ours), the queue's
filters, map and counts, bulk actions, and the field view's distance sort and status buttons."""

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from geo311.models import ServiceCategory, ServiceRequest, StatusEvent
from geo311.photos.models import Photo
from geo311.roles import CREW, DEPARTMENT_STAFF, MANAGER
from geo311.services import Actor, Reporter, request_assign, request_create
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

WARD_42 = Point(-87.6230, 41.8850, srid=4326)  # the loop crew's area
WARD_42_EAST = Point(-87.6180, 41.8870, srid=4326)
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)  # ward 1: the ward crews
REPORTER = Reporter(first_name="Grace", email="grace.private@example.org")


def file(code: str, point: Point = WARD_42, **extra: Any) -> ServiceRequest:
    answers = {"SAN_CODE": {"NATURE": ["overflowing-carts"]}, "POTHOLE": {"WHERE": ["street"]}}
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        answers=answers.get(code, {}),
        reporter=REPORTER,
        **extra,
    )


@pytest.fixture
def city(chicago_city: None) -> dict[str, Any]:
    users = {
        "sanitation": staff_user("sanitation", DEPARTMENT_STAFF, "streets-sanitation"),
        "roads": staff_user("roads", DEPARTMENT_STAFF, "transportation"),
        "crew": staff_user("crew", CREW, "streets-sanitation", "loop-crew"),
        "ward_crew": staff_user("wardcrew", CREW, "streets-sanitation", "ward-crews"),
        "road_crew": staff_user("roadcrew", CREW, "transportation", "street-ops"),
        "manager": staff_user("manager", MANAGER),
        "resident": User.objects.create_user("resident", password="pw"),
    }
    requests = {
        "near": file("SAN_CODE", WARD_42),
        "far": file("SAN_CODE", WICKER_PARK),
        "east": file("SAN_CODE", WARD_42_EAST),
        "pothole": file("POTHOLE", WICKER_PARK),
    }
    boss = Actor(user=users["sanitation"])
    for name in ("near", "far", "east"):
        request_assign(request=requests[name], actor=boss, assignee=users["crew"])
    return {"users": users, "requests": requests}


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def ids_on(html: str, requests: dict[str, ServiceRequest]) -> set[str]:
    return {name for name, r in requests.items() if r.public_id in html}


PAGES = [
    ("get", "/staff/"),
    ("get", "/staff/queue/"),
    ("get", "/staff/queue/map.geojson"),
    ("get", "/staff/queue/counts.json"),
    ("post", "/staff/queue/bulk"),
    ("get", "/staff/field/"),
    ("get", "/staff/field/work.json"),
    ("post", "/staff/field/X-1/update"),
]


@pytest.mark.parametrize(("method", "url"), PAGES)
def test_anonymous_users_are_sent_to_sign_in(client: Client, chicago_city: None, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={url}")


@pytest.mark.parametrize(("method", "url"), PAGES)
def test_users_without_a_staff_role_are_refused(client: Client, city, method, url):
    signed_in(client, city["users"]["resident"])
    assert getattr(client, method)(url).status_code == 403


def test_the_login_page_leads_back_to_the_queue(client: Client, city) -> None:
    response = client.post(
        "/accounts/login/?next=/staff/queue/",
        {"username": "sanitation", "password": "pw-sanitation", "next": "/staff/queue/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/queue/"
    assert client.get("/staff/queue/").status_code == 200


def test_a_department_sees_its_own_requests_in_list_map_and_counts(client: Client, city):
    signed_in(client, city["users"]["sanitation"])
    page = client.get("/staff/queue/").content.decode()
    assert ids_on(page, city["requests"]) == {"near", "far", "east"}
    features = client.get("/staff/queue/map.geojson").json()["features"]
    assert {f["id"] for f in features} == {
        city["requests"][n].public_id for n in ("near", "far", "east")
    }
    near = next(f for f in features if f["id"] == city["requests"]["near"].public_id)
    assert near["geometry"]["coordinates"] == pytest.approx([WARD_42.x, WARD_42.y])
    assert near["properties"]["assignee"] == "crew"
    counts = client.get("/staff/queue/counts.json").json()
    assert counts["totals"] == {"open": 3, "overdue": 0, "unassigned": 0}
    by_status = {row["status"]: row for row in counts["statuses"]}
    assert by_status["submitted"]["open"] == 3


def test_a_crew_of_another_department_sees_nothing_of_ours(client: Client, city) -> None:
    signed_in(client, city["users"]["road_crew"])
    ours = {n: r for n, r in city["requests"].items() if n != "pothole"}
    assert ids_on(client.get("/staff/queue/").content.decode(), ours) == set()
    assert ids_on(client.get("/staff/field/").content.decode(), ours) == set()
    assert client.get("/staff/queue/map.geojson").json()["features"] == []
    assert client.get("/staff/queue/counts.json").json()["totals"]["open"] == 0
    assert client.get("/staff/field/work.json").json()["requests"] == []
    near = city["requests"]["near"]
    response = client.post(f"/staff/field/{near.public_id}/update", {"status": "on-site"})
    assert response.status_code == 403
    client.post(
        "/staff/queue/bulk",
        {"action": "transition", "selected": [near.public_id], "status": "in-progress"},
    )
    near.refresh_from_db()
    assert near.status.code == "submitted"
    assert "grace.private" not in client.get("/staff/queue/").content.decode()


def test_queue_filters_by_status_boundary_and_age(client: Client, city) -> None:
    signed_in(client, city["users"]["manager"])
    reqs = city["requests"]
    request_assign(
        request=reqs["pothole"],
        actor=Actor(user=city["users"]["roads"]),
        assignee=city["users"]["road_crew"],
    )

    def listed(**query: Any) -> set[str]:
        response = client.get("/staff/queue/", query)
        assert response.status_code == 200
        return ids_on(response.content.decode(), reqs)

    assert listed() == set(reqs)
    assert listed(service_code="POTHOLE") == {"pothole"}
    assert listed(boundary="wards:42") == {"near", "east"}
    assert listed(unassigned="on") == set()
    ServiceRequest.objects.filter(pk=reqs["far"].pk).update(
        requested_at=timezone.now() - dt.timedelta(days=10),
        expected_at=timezone.now() - dt.timedelta(days=1),
    )
    assert listed(min_age_days="5") == {"far"}
    assert listed(max_age_days="5") == {"near", "east", "pothole"}
    assert listed(overdue="yes") == {"far"}
    assert listed(status="submitted") == set(reqs)
    assert listed(status="in-progress") == set()
    features = client.get("/staff/queue/map.geojson", {"overdue": "yes"}).json()["features"]
    assert [f["properties"]["overdue"] for f in features] == [True]
    bad = client.get("/staff/queue/", {"boundary": "wards:999"})
    assert "No active boundary &#x27;999&#x27; in layer &#x27;wards&#x27;" in bad.content.decode()
    error = client.get("/staff/queue/map.geojson", {"boundary": "nowhere"})
    assert error.status_code == 400
    assert "boundary" in error.json()["errors"]


def test_the_queue_pages_through_many_requests(client: Client, city) -> None:
    for _ in range(52):
        file("SAN_CODE", WARD_42)
    signed_in(client, city["users"]["sanitation"])
    first = client.get("/staff/queue/").content.decode()
    assert "Page 1 of 2" in first
    assert 'rel="next"' in first
    second = client.get("/staff/queue/", {"page": 2}).content.decode()
    assert "Page 2 of 2" in second
    assert second.count('name="selected"') == 55 - 50


def test_the_queue_page_does_not_query_per_row(client: Client, city, django_assert_max_num_queries):
    for _ in range(20):
        file("SAN_CODE", WARD_42)
    signed_in(client, city["users"]["sanitation"])
    client.get("/staff/queue/")
    with django_assert_max_num_queries(16):
        assert client.get("/staff/queue/").status_code == 200


def test_bulk_assign_and_transition(client: Client, city) -> None:
    reqs = city["requests"]
    signed_in(client, city["users"]["sanitation"])
    picked = [reqs["near"].public_id, reqs["far"].public_id]
    response = client.post(
        "/staff/queue/bulk",
        {
            "action": "assign",
            "selected": picked,
            "assignee": "wardcrew",
            "filters": "status=submitted",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/staff/queue/?status=submitted"
    assert f"Assigned: {picked[0]}, {picked[1]}" in response.content.decode()
    for name in ("near", "far"):
        reqs[name].refresh_from_db()
        assert reqs[name].assignee == city["users"]["ward_crew"]
        assert reqs[name].team.slug == "ward-crews"
    reqs["east"].refresh_from_db()
    assert reqs["east"].assignee == city["users"]["crew"]

    # Change status: one refused by the city's transitions (submitted cannot become completed),
    # and one outside the department (roads' pothole): both reported, the others changed.
    response = client.post(
        "/staff/queue/bulk",
        {
            "action": "transition",
            "selected": [*picked, reqs["pothole"].public_id],
            "status": "in-progress",
            "public_note": "Crews are on their way",
        },
        follow=True,
    )
    page = response.content.decode()
    assert f"Changed: {picked[0]}, {picked[1]}" in page
    assert f"{reqs['pothole'].public_id}: you may not change it" in page
    event = StatusEvent.objects.filter(request=reqs["near"], kind="status").get()
    assert event.note == "Crews are on their way"
    assert event.status.code == "in-progress"
    response = client.post(
        "/staff/queue/bulk",
        {"action": "transition", "selected": [reqs["east"].public_id], "status": "completed"},
        follow=True,
    )
    assert "cannot change to &#x27;completed&#x27;" in response.content.decode()
    response = client.post(
        "/staff/queue/bulk", {"action": "assign", "selected": picked}, follow=True
    )
    assert "Team: Choose a team or a crew member to assign to." in response.content.decode()


def test_a_crew_member_cannot_assign(client: Client, city) -> None:
    near = city["requests"]["near"]
    signed_in(client, city["users"]["crew"])
    response = client.post(
        "/staff/queue/bulk",
        {"action": "assign", "selected": [near.public_id], "team": "ward-crews"},
        follow=True,
    )
    assert f"{near.public_id}: you may not change it" in response.content.decode()
    near.refresh_from_db()
    assert near.team.slug == "loop-crew"


def test_the_field_list_is_sorted_by_distance_from_the_device(client: Client, city) -> None:
    reqs = city["requests"]
    signed_in(client, city["users"]["crew"])
    # Standing in Wicker Park: the far one (ward 1) is nearest, then the Loop's two.
    rows = client.get(
        "/staff/field/work.json", {"lat": WICKER_PARK.y + 0.001, "lon": WICKER_PARK.x}
    ).json()["requests"]
    assert [r["service_request_id"] for r in rows] == [
        reqs[n].public_id for n in ("far", "near", "east")
    ]
    assert rows[0]["distance_m"] == pytest.approx(111.0, abs=1.5)  # 0.001° of latitude
    # Standing east of the Loop: the east one first.
    rows = client.get("/staff/field/work.json", {"lat": 41.8871, "lon": -87.6170}).json()[
        "requests"
    ]
    assert [r["service_request_id"] for r in rows][0] == reqs["east"].public_id
    # Without a location: oldest first, no distances.
    rows = client.get("/staff/field/work.json").json()["requests"]
    assert [r["service_request_id"] for r in rows] == [
        reqs[n].public_id for n in ("near", "far", "east")
    ]
    assert {r["distance_m"] for r in rows} == {None}
    page = client.get("/staff/field/", {"lat": 41.8871, "lon": -87.6170}).content.decode()
    assert page.index(reqs["east"].public_id) < page.index(reqs["far"].public_id)


def test_on_site_then_completed_from_the_field(client: Client, city) -> None:
    near = city["requests"]["near"]
    signed_in(client, city["users"]["crew"])
    page = client.get("/staff/field/").content.decode()
    # Submitted allows neither button yet (the city's transitions): the department moves it on.
    assert f"/staff/field/{near.public_id}/update" not in page
    signed_in(client, city["users"]["sanitation"])
    client.post(
        "/staff/queue/bulk",
        {"action": "transition", "selected": [near.public_id], "status": "assigned"},
    )
    signed_in(client, city["users"]["crew"])
    page = client.get("/staff/field/").content.decode()
    assert 'value="on-site"' in page
    assert 'value="completed"' in page
    response = client.post(
        f"/staff/field/{near.public_id}/update",
        {"status": "on-site", "lat": "41.885", "lon": "-87.623"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/field/?lat=41.885&lon=-87.623"
    near.refresh_from_db()
    assert near.status.code == "on-site"
    response = client.post(
        f"/staff/field/{near.public_id}/update",
        {"status": "completed", "public_note": "Carts emptied"},
        follow=True,
    )
    near.refresh_from_db()
    assert near.status.code == "completed"
    assert near.closed_at is not None
    event = StatusEvent.objects.filter(request=near, status__code="completed").get()
    assert event.note == "Carts emptied"
    assert event.actor == "crew"
    # Closed work leaves the list.
    assert near.public_id not in client.get("/staff/field/").content.decode().split("</h1>")[1]


def test_a_transition_the_city_refuses_is_explained(client: Client, city) -> None:
    near = city["requests"]["near"]
    signed_in(client, city["users"]["crew"])
    response = client.post(
        f"/staff/field/{near.public_id}/update", {"status": "completed"}, follow=True
    )
    assert (
        "&#x27;submitted&#x27; cannot change to &#x27;completed&#x27;" in response.content.decode()
    )
    response = client.post(f"/staff/field/{near.public_id}/update", {"status": "nope"}, follow=True)
    assert "no status &#x27;nope&#x27;" in response.content.decode()


def jpeg(size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (40, 120, 60)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def media(settings, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


def ready_for_the_crew(client: Client, city: dict[str, Any]) -> ServiceRequest:
    near = city["requests"]["near"]
    signed_in(client, city["users"]["sanitation"])
    client.post(
        "/staff/queue/bulk",
        {"action": "transition", "selected": [near.public_id], "status": "assigned"},
    )
    signed_in(client, city["users"]["crew"])
    return near


def test_completed_with_a_photo_puts_the_photo_on_the_event(client: Client, city, media) -> None:
    near = ready_for_the_crew(client, city)
    response = client.post(
        f"/staff/field/{near.public_id}/update",
        {
            "status": "completed",
            "public_note": "Carts emptied",
            "photo": SimpleUploadedFile("done.jpg", jpeg(), content_type="image/jpeg"),
        },
        follow=True,
    )
    assert f"{near.public_id}: Completed" in response.content.decode()
    event = StatusEvent.objects.get(request=near, status__code="completed")
    [photo] = Photo.objects.filter(request=near)
    assert photo.event_id == event.pk
    assert photo.public
    assert event.photo_url.endswith(photo.urls()["large"])
    assert (media / photo.large).is_file()
    assert (media / photo.thumbnail).is_file()


def test_a_refused_photo_changes_nothing_and_names_the_file(client: Client, city, media):
    near = ready_for_the_crew(client, city)
    response = client.post(
        f"/staff/field/{near.public_id}/update",
        {
            "status": "completed",
            "photo": SimpleUploadedFile("notes.jpg", b"not a picture", content_type="image/jpeg"),
        },
        follow=True,
    )
    assert "notes.jpg: not an image" in response.content.decode()
    near.refresh_from_db()
    assert near.status.code == "assigned"
    assert not Photo.objects.filter(request=near).exists()
    # A good photo with a transition the city refuses: neither the row nor its files stay.
    response = client.post(
        f"/staff/field/{near.public_id}/update",
        {
            "status": "submitted",
            "photo": SimpleUploadedFile("done.jpg", jpeg(), content_type="image/jpeg"),
        },
        follow=True,
    )
    assert "cannot change to &#x27;submitted&#x27;" in response.content.decode()
    assert not Photo.objects.filter(request=near).exists()
    assert [p for p in media.rglob("*") if p.is_file()] == []


def test_crews_start_in_the_field_view_and_staff_in_the_queue(client: Client, city) -> None:
    assert signed_in(client, city["users"]["crew"]).get("/staff/")["Location"] == "/staff/field/"
    client.logout()
    assert signed_in(client, city["users"]["sanitation"]).get("/staff/")["Location"] == (
        "/staff/queue/"
    )


def test_the_field_page_does_not_query_per_row(
    client: Client, city, django_assert_max_num_queries
) -> None:
    crew = city["users"]["crew"]
    boss = Actor(user=city["users"]["sanitation"])
    for _ in range(15):
        request_assign(request=file("SAN_CODE", WARD_42), actor=boss, assignee=crew)
    signed_in(client, crew)
    client.get("/staff/field/", {"lat": 41.88, "lon": -87.62})
    with django_assert_max_num_queries(10):
        page = client.get("/staff/field/", {"lat": 41.88, "lon": -87.62})
    assert page.content.decode().count('class="job"') == 18


def test_the_counts_stream_needs_the_asgi_server_and_a_staff_sign_in(
    client: Client, city, settings
) -> None:
    signed_in(client, city["users"]["sanitation"])
    settings.GEO311_EVENTS_URL = ""
    assert client.get("/staff/queue/events").status_code == 501
    settings.GEO311_EVENTS_URL = "http://127.0.0.1:8001"
    response = client.get("/staff/queue/events")
    assert response.status_code == 302
    assert response["Location"] == "http://127.0.0.1:8001/staff/queue/events"


def test_the_counts_stream_refuses_anonymous_and_non_staff(async_client, city) -> None:
    """Under ASGI (the async client): 403 before any stream starts."""

    async def statuses() -> list[int]:
        anonymous = (await async_client.get("/staff/queue/events")).status_code
        await async_client.aforce_login(city["users"]["resident"])
        resident = (await async_client.get("/staff/queue/events")).status_code
        return [anonymous, resident]

    assert async_to_sync(statuses)() == [403, 403]


def test_the_pages_are_translated(client: Client, city, settings) -> None:
    settings.LANGUAGE_CODE = "es"
    signed_in(client, city["users"]["crew"])
    assert "Mi trabajo" in client.get("/staff/field/").content.decode()
    page = client.get("/staff/queue/").content.decode()
    assert "Cola del departamento" in page
    assert "3 solicitudes" in page


def test_a_bad_device_location_is_named(client: Client, city) -> None:
    signed_in(client, city["users"]["crew"])
    response = client.get("/staff/field/work.json", {"lat": "north", "lon": "-87.6"})
    assert response.status_code == 400
    assert response.json() == {"lat": ["give lat and lon in degrees"]}
    response = client.get("/staff/field/work.json", {"lat": "41.9", "lon": "-187.6"})
    assert response.json() == {"lon": ["must be between -180 and 180"]}
    response = client.get("/staff/field/work.json", {"lat": "41.9"})
    assert response.json() == {"lon": ["give lat and lon in degrees"]}
    page = client.get("/staff/field/", {"lat": "95", "lon": "-87.6"}).content.decode()
    assert "lat: must be between -90 and 90" in page
    assert page.count('class="job"') == 3  # still listed, oldest first
