"""GET /requests (every filter, paging, geography, extensions), GET /requests/{id}, the updates
feed, query counts, and privacy of the reporter across every read."""

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from django.contrib.gis.geos import Point
from django.test import Client
from django.utils import timezone

from geo311.models import ServiceCategory, ServiceRequest, Status, StatusEvent
from geo311.services import Reporter, request_create
from tests.geo311.conftest import (
    LOOP_POINT,
    REPORTER,
    REQUEST_FIELDS,
    W3C,
    at,
    errors_of,
    get,
    json_of,
    make_request,
    xml_of,
)

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [r["service_request_id"] for r in json_of(response)]


def test_default_window_is_the_last_90_days_newest_first(client: Client, chicago_city):
    old = make_request(requested_at=at(100))
    a, b, c = (make_request(requested_at=at(days)) for days in (30, 2, 10))
    assert ids(get(client, "requests")) == [b.public_id, c.public_id, a.public_id]
    assert old.public_id in ids(get(client, "requests", start_date=at(120).isoformat()))


def test_default_window_stops_at_the_newest_1000(client: Client, chicago_city):
    category = ServiceCategory.objects.get(service_code="SIDEWALK")
    status = Status.objects.get(code="submitted")
    now = timezone.now()
    ServiceRequest.objects.bulk_create(
        ServiceRequest(
            category=category,
            status=status,
            location=LOOP_POINT,
            requested_at=now - dt.timedelta(minutes=n),
            updated_at=now,
        )
        for n in range(1005)
    )
    assert len(json_of(get(client, "requests", page_size=500, page=2))) == 500
    assert json_of(get(client, "requests", page_size=500, page=3)) == []
    assert len(json_of(get(client, "requests", page=20))) == 50
    assert json_of(get(client, "requests", page=21)) == []
    # Asking with dates lifts the default cap.
    dated = get(client, "requests", page_size=500, page=3, start_date=at(1).isoformat())
    assert len(json_of(dated)) == 5


def test_paging_defaults_to_50_and_pages_do_not_overlap(client: Client, chicago_city):
    made = [make_request(requested_at=at(n / 100), events=0).public_id for n in range(60)]
    first = ids(get(client, "requests"))
    assert first == made[:50]
    assert ids(get(client, "requests", page=2)) == made[50:]
    assert ids(get(client, "requests", page=2, page_size=25)) == made[25:50]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"page_size": 501}, "page_size: Ensure this value is less than or equal to 500."),
        ({"page": 0}, "page: Ensure this value is greater than or equal to 1."),
        ({"page": "two"}, "page: A valid integer is required."),
        ({"status": "pending"}, "status: not one of open, closed: pending"),
        (
            {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"},
            "end_date: must be at most 90 days after start_date",
        ),
        (
            {"start_date": "2026-05-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            "end_date: must not be before start_date",
        ),
        ({"start_date": "last tuesday"}, "start_date: Datetime has wrong format."),
        ({"lat": 41.88, "long": -87.63}, "radius: lat, long and radius go together"),
        ({"lat": "nan", "long": -87.63, "radius": 10}, "lat: A valid number is required."),
        (
            {"lat": 41.88, "long": -87.63, "radius": 0},
            "radius: Ensure this value is greater than or equal to 1.",
        ),
        ({"bbox": "1,2,3"}, "bbox: four numbers: west,south,east,north (degrees)"),
        ({"bbox": "-87,41,-88,42"}, "bbox: needs west < east and south < north, in degrees"),
        ({"service_request_id": "\x00"}, "service_request_id: Null characters are not allowed."),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_filters_are_400_naming_the_parameter(client: Client, chicago_city, fmt, params, error):
    response = get(client, "requests", fmt, **params)
    assert response.status_code == 400
    assert errors_of(response)[0][1].startswith(error)


def test_service_request_id_overrides_every_other_filter(client: Client, chicago_city):
    old_closed = make_request("POTHOLE", requested_at=at(200), status="completed")
    recent = make_request("SIDEWALK")
    make_request("SIDEWALK")
    response = get(
        client,
        "requests",
        service_request_id=f"{old_closed.public_id}, {recent.public_id},999999999",
        service_code="GRAFFITI",
        status="open",
        start_date=at(5).isoformat(),
    )
    assert sorted(ids(response)) == sorted([old_closed.public_id, recent.public_id])


def test_service_code_takes_a_comma_list(client: Client, chicago_city):
    pothole = make_request("POTHOLE")
    sidewalk = make_request("SIDEWALK")
    make_request("GRAFFITI")
    assert ids(get(client, "requests", service_code="POTHOLE,SIDEWALK")) == [
        sidewalk.public_id,
        pothole.public_id,
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_code_filter_is_404(client: Client, chicago_city, fmt):
    response = get(client, "requests", fmt, service_code="POTHOLE,UFO,ALIEN")
    assert response.status_code == 404
    assert errors_of(response) == [(404, "service_code: no service ALIEN, UFO")]


def test_start_and_end_date_bound_the_requested_time(client: Client, chicago_city):
    make_request(requested_at=at(40))
    inside = make_request(requested_at=at(20))
    make_request(requested_at=at(5))
    response = get(client, "requests", start_date=at(30).isoformat(), end_date=at(10).isoformat())
    assert ids(response) == [inside.public_id]
    only_end = get(client, "requests", end_date=at(30).isoformat())
    assert len(ids(only_end)) == 1


def test_dates_in_z_form_and_with_an_unencoded_plus_are_read(client: Client, chicago_city):
    request = make_request(requested_at=dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC))
    zulu = get(client, "requests", start_date="2026-03-10T00:00:00Z", end_date="2026-03-11")
    assert ids(zulu) == [request.public_id]
    # "+00:00" sent without percent-encoding arrives as " 00:00".
    raw = client.get("/open311/v2/requests.json?start_date=2026-03-10T00:00:00+00:00")
    assert ids(raw) == [request.public_id]


def test_status_filter(client: Client, chicago_city):
    open_ = make_request(status="in-progress")
    closed = make_request(status="duplicate")
    assert ids(get(client, "requests", status="open")) == [open_.public_id]
    assert ids(get(client, "requests", status="closed")) == [closed.public_id]
    assert len(ids(get(client, "requests", status="open,closed"))) == 2


def test_updated_after_and_before(client: Client, chicago_city):
    stale = make_request(requested_at=at(50), updated_at=at(40))
    fresh = make_request(requested_at=at(50), updated_at=at(1))
    assert ids(get(client, "requests", updated_after=at(10).isoformat())) == [fresh.public_id]
    assert ids(get(client, "requests", updated_before=at(10).isoformat())) == [stale.public_id]


def test_empty_parameters_count_as_absent(client: Client, chicago_city):
    request = make_request()
    response = get(
        client,
        "requests",
        service_request_id="",
        service_code="",
        status="",
        start_date="",
        end_date="",
        page="",
        lat="",
        long="",
        radius="",
        bbox="",
        extensions="",
    )
    assert ids(response) == [request.public_id]


def test_radius_is_in_metres(client: Client, chicago_city):
    # 0.006° of longitude at Chicago's latitude is about 497 m (0.006° of latitude: 667 m).
    here = make_request(point=LOOP_POINT)
    east = make_request(point=Point(LOOP_POINT.x + 0.006, LOOP_POINT.y, srid=4326))
    north = make_request(point=Point(LOOP_POINT.x, LOOP_POINT.y + 0.006, srid=4326))
    make_request(point=Point(-87.7614, 41.9703, srid=4326))  # 14 km away
    near = {"lat": LOOP_POINT.y, "long": LOOP_POINT.x}
    assert ids(get(client, "requests", radius=450, **near)) == [here.public_id]
    assert set(ids(get(client, "requests", radius=550, **near))) == {here.public_id, east.public_id}
    assert set(ids(get(client, "requests", radius=700, **near))) == {
        here.public_id,
        east.public_id,
        north.public_id,
    }


def test_bbox(client: Client, chicago_city):
    inside = make_request(point=LOOP_POINT)
    make_request(point=Point(-87.7614, 41.9703, srid=4326))
    assert ids(get(client, "requests", bbox="-87.64,41.87,-87.62,41.89")) == [inside.public_id]


def routed_request(**extra: object) -> ServiceRequest:
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=LOOP_POINT,
        description="Carts overflowing",
        answers={"NATURE": ["overflowing-carts"]},
        reporter=Reporter(**REPORTER),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    completed = Status.objects.get(code="completed")
    StatusEvent.objects.create(
        request=request, status=completed, note="Carts emptied", created_at=timezone.now()
    )
    StatusEvent.objects.create(
        request=request,
        status=completed,
        note="internal: crew 7 overtime",
        public=False,
        created_at=timezone.now() + dt.timedelta(minutes=1),
    )
    request.status = completed
    request.save()
    return request


def test_request_detail_is_a_one_item_list_with_the_latest_public_note(
    client: Client, chicago_city
):
    request = routed_request()
    (read,) = json_of(get(client, f"requests/{request.public_id}"))
    assert read["status"] == "closed"
    assert read["status_notes"] == "Carts emptied"
    assert "extended_attributes" not in read


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("request_id", ["999999999", "%00"])
def test_unknown_request_is_404(client: Client, chicago_city, fmt, request_id):
    response = get(client, f"requests/{request_id}", fmt)
    assert response.status_code == 404
    ((code, description),) = errors_of(response)
    assert code == 404
    assert description.startswith("service_request_id: ")


def test_extensions_add_areas_rule_status_history_answers_and_team(client: Client, chicago_city):
    request = routed_request()
    (read,) = json_of(get(client, f"requests/{request.public_id}", extensions="true"))
    extended = read["extended_attributes"]
    assert {(a["layer"], a["code"]) for a in extended["areas"]} == {
        ("city-limits", "CHICAGO"),
        ("community-areas", "32"),
        ("police-beats", "113"),
        ("police-districts", "1"),
        ("wards", "2"),
    }
    assert extended["routing_rule"] == "group Sanitation in wards → Streets & Sanitation"
    assert extended["team"] == "Ward sanitation crews"
    assert extended["detailed_status"] == {"code": "completed", "name": "Completed"}
    notes = extended["notes"]
    assert [(n["description"], n["type"], n["status"]) for n in notes] == [
        ("Received", "opened", "submitted"),
        ("Carts emptied", "closed", "completed"),
    ]
    assert all(W3C.match(n["datetime"]) for n in notes)
    assert extended["answers"] == [
        {
            "code": "NATURE",
            "question": "What is the nature of this code violation?",
            "values": ["overflowing-carts"],
        }
    ]


def test_extensions_in_xml_nest_with_singular_item_names(client: Client, chicago_city):
    request = routed_request()
    root = xml_of(get(client, "requests", "xml", extensions="true"))
    (item,) = root.findall("request")
    extended = item.find("extended_attributes")
    assert extended is not None
    assert [child.tag for child in extended] == [
        "areas",
        "routing_rule",
        "team",
        "detailed_status",
        "notes",
        "answers",
        "parent_service_request_id",
        "duplicates",
        "followers",
    ]
    assert item.findtext("service_request_id") == request.public_id
    assert len(extended.findall("areas/area")) == 5
    assert extended.findtext("detailed_status/code") == "completed"
    assert [n.findtext("type") for n in extended.iterfind("notes/note")] == ["opened", "closed"]
    assert [v.text for v in extended.iterfind("answers/answer/values/value")] == [
        "overflowing-carts"
    ]


def test_list_in_xml_element_by_element(client: Client, chicago_city):
    request = make_request(
        "POTHOLE",
        description="Deep one",
        address="121 N LaSalle St",
        zipcode="60602",
        media_url="https://example.org/p.jpg",
        expected_at=timezone.now() + dt.timedelta(days=3),
    )
    root = xml_of(get(client, "requests", "xml"))
    assert root.tag == "service_requests"
    (item,) = root
    assert item.tag == "request"
    fields = {child.tag: child.text for child in item}
    assert list(fields) == REQUEST_FIELDS
    assert fields["service_request_id"] == request.public_id
    assert fields["status"] == "open"
    assert fields["status_notes"] == "note 1"
    assert fields["service_code"] == "POTHOLE"
    assert fields["agency_responsible"] == "Transportation (CDOT)"
    assert fields["address"] == "121 N LaSalle St"
    assert fields["address_id"] is None
    assert fields["zipcode"] == "60602"
    assert float(fields["lat"] or "") == LOOP_POINT.y
    assert float(fields["long"] or "") == LOOP_POINT.x
    assert fields["media_url"] == "https://example.org/p.jpg"
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert W3C.match(fields[name] or ""), name
    assert fields["requested_datetime"] == timezone.localtime(request.requested_at).isoformat(
        timespec="seconds"
    )


@pytest.mark.parametrize(
    ("params", "queries"),
    [
        ({}, 2),  # requests with category, department and status; their public events
        ({"extensions": "true"}, 3),  # + the categories' questions (team is joined)
        ({"service_code": "SIDEWALK,POTHOLE"}, 3),  # + checking the codes exist
        ({"lat": 41.8781, "long": -87.6298, "radius": 5000}, 2),
    ],
)
def test_list_query_count_does_not_grow_with_the_page(
    client: Client, chicago_city, django_assert_num_queries, params, queries
):
    for n in range(3):
        make_request("SIDEWALK", events=2, requested_at=at(n))
    # Once per process, Django reads the units of SRID 4326 (spatial_ref_sys) for the radius's
    # geography cast: not part of the count, and only there when no earlier test did it.
    get(client, "requests", **params)
    with django_assert_num_queries(queries):
        assert len(json_of(get(client, "requests", **params))) == 3
    for n in range(30):
        make_request("POTHOLE", events=3, requested_at=at(n))
    with django_assert_num_queries(queries):
        assert len(json_of(get(client, "requests", **params))) == 33
    with django_assert_num_queries(queries):
        assert len(xml_of(get(client, "requests", "xml", **params))) == 33


def test_detail_query_count(client: Client, chicago_city, django_assert_num_queries):
    request = routed_request()
    with django_assert_num_queries(2):
        get(client, f"requests/{request.public_id}")
    with django_assert_num_queries(3):
        get(client, f"requests/{request.public_id}", extensions="true")


def test_updates_feed_lists_public_status_changes_oldest_first(
    client: Client, chicago_city, django_assert_num_queries
):
    request = routed_request()
    make_request(requested_at=at(100))  # its event is outside the default window
    with django_assert_num_queries(1):
        body = json_of(get(client, "servicerequestupdates"))
    assert [(u["description"], u["status"], u["detailed_status"]) for u in body] == [
        ("Received", "open", "submitted"),
        ("Carts emptied", "closed", "completed"),
    ]
    first = body[0]
    assert list(first) == [
        "update_id",
        "service_request_id",
        "status",
        "detailed_status",
        "updated_datetime",
        "description",
        "media_url",
    ]
    assert first["service_request_id"] == request.public_id
    assert isinstance(first["update_id"], str)
    assert W3C.match(first["updated_datetime"])

    root = xml_of(get(client, "servicerequestupdates", "xml"))
    assert root.tag == "service_request_updates"
    assert [u.tag for u in root] == ["request_update", "request_update"]
    assert root.findtext("request_update/update_id") == first["update_id"]

    window = get(
        client,
        "servicerequestupdates",
        start_date=at(101).isoformat(),
        end_date=at(99).isoformat(),
    )
    assert [u["description"] for u in json_of(window)] == ["note 1"]


def test_updates_feed_window_is_at_most_90_days(client: Client, chicago_city):
    response = get(
        client,
        "servicerequestupdates",
        "xml",
        start_date="2026-01-01T00:00:00Z",
        end_date="2026-06-01T00:00:00Z",
    )
    assert response.status_code == 400
    assert errors_of(response) == [(400, "end_date: must be at most 90 days after start_date")]


def test_reporter_details_never_appear_in_any_answer(client: Client, chicago_city):
    batch = request_create(
        category=ServiceCategory.objects.get(service_code="STRAY_ANIMAL"),
        location=LOOP_POINT,
        reporter=Reporter(**REPORTER),  # type: ignore[arg-type]
    )
    request = routed_request()
    answers = []
    for fmt in ("json", "xml"):
        answers += [
            get(client, "requests", fmt),
            get(client, "requests", fmt, extensions="true"),
            get(client, f"requests/{request.public_id}", fmt, extensions="true"),
            get(client, "servicerequestupdates", fmt),
            get(client, f"tokens/{batch.token}", fmt),
        ]
    for response in answers:
        assert response.status_code == 200
        body = response.content.decode()
        assert request.public_id in body or batch.public_id in body
        for value in REPORTER.values():
            assert value not in body, (response.wsgi_request.path, value)
    # ... and the XML is well-formed
    ET.fromstring(answers[-1].content)
