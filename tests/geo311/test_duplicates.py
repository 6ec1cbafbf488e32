"""Duplicate detection: the candidate query and its score, the link made on submit, and the
public nearby API."""

import datetime as dt
import math
from typing import Any

import pytest
from django.contrib.gis.geos import Point
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from geo311 import sql_duplicates
from geo311.api import NearbyCandidateSerializer, NearbyRequestsApi
from geo311.duplicates import (
    Weights,
    duplicate_candidates,
    query_params,
    request_address_keys_fill,
)
from geo311.models import Department, ServiceCategory, ServiceRequest, Status
from geo311.services import Reporter, request_create
from tests.conftest import LOOP
from tests.geo311.conftest import REPORTER as PRIVATE_DETAILS

pytestmark = pytest.mark.django_db

LAT, LON = LOOP
HERE = Point(LON, LAT, srid=4326)
NEARBY_URL = "/api/v1/requests/nearby"
# Private details of a reporter: none may appear in the public nearby answer (the same values as
# tests/geo311/conftest.py, none of which a random public id can hold by chance).
REPORTER = Reporter(**PRIVATE_DETAILS)  # type: ignore[arg-type]


def north(metres: float) -> Point:
    """A point ``metres`` north of the Loop point (1° of latitude ≈ 111.2 km)."""
    return Point(LON, LAT + metres / 111_195.0, srid=4326)


def category(code: str) -> ServiceCategory:
    return ServiceCategory.objects.get(service_code=code)


def stored(
    code: str = "SAN_CODE",
    *,
    point: Point = HERE,
    days_ago: float = 1.0,
    closed_days_ago: float | None = None,
    address: str = "",
    description: str = "",
    **fields: Any,
) -> ServiceRequest:
    """An earlier request written straight to the table, as imports write them."""
    cat = category(code)
    now = timezone.now()
    closed = closed_days_ago is not None
    return ServiceRequest.objects.create(
        category=cat,
        department=Department.objects.get(pk=cat.default_department_id),
        status=Status.objects.get(code="completed" if closed else "submitted"),
        location=point,
        address=address,
        address_key=sql_key(address),
        description=description,
        requested_at=now - dt.timedelta(days=days_ago),
        updated_at=now,
        closed_at=now - dt.timedelta(days=closed_days_ago) if closed else None,
        **fields,
    )


def sql_key(address: str) -> str:
    from geo311.addresses import normalize_address

    return normalize_address(address) if address else ""


def candidates(code: str = "SAN_CODE", **kwargs: Any) -> list:
    kwargs.setdefault("point", HERE)
    return duplicate_candidates(category=category(code), **kwargs)


# --- the candidate query ---------------------------------------------------------------------


def test_an_open_request_at_the_same_address_is_a_likely_duplicate(chicago_city):
    earlier = stored(point=north(3), days_ago=2, address="233 S Wacker Drive")
    found = candidates(address="233 SOUTH WACKER DR")
    assert [c.request.pk for c in found] == [earlier.pk]
    best = found[0]
    assert best.score > 0.5
    assert 2.5 < best.features.distance_m < 3.5  # metres, on the spheroid
    assert best.features.same_address  # both normalise to "233 S WACKER DR"
    assert best.reasons[:4] == ["3 m away", "reported 2 days ago", "still open", "same category"]
    assert "same street address" in best.reasons
    assert best.request.public_id == earlier.public_id
    assert best.request.category.service_code == "SAN_CODE"
    assert best.open311_status == "open"


def test_score_falls_with_distance_time_and_closing(chicago_city):
    near_new = stored(point=north(2), days_ago=0.5)
    far = stored(point=north(120), days_ago=0.5)
    old = stored(point=north(2), days_ago=20)
    closed = stored(point=north(2), days_ago=0.5, closed_days_ago=0.2)
    scores = {c.request.pk: c.score for c in candidates(limit=10)}
    assert scores[near_new.pk] > scores[far.pk]
    assert scores[near_new.pk] > scores[old.pk]
    assert scores[near_new.pk] > scores[closed.pk]
    assert all(0.0 < s < 1.0 for s in scores.values())


def test_only_candidates_inside_radius_window_and_still_relevant(chicago_city):
    inside = stored(point=north(200), days_ago=29)
    stored(point=north(300), days_ago=1)  # outside the default 250 m
    stored(point=north(10), days_ago=31)  # outside the default 30 days
    stored(point=north(10), days_ago=5, closed_days_ago=4)  # closed long before
    recently_closed = stored(point=north(10), days_ago=5, closed_days_ago=1)
    stored(point=north(10), days_ago=-1)  # after the probe's time
    found = {c.request.pk: c for c in candidates(limit=10)}
    assert set(found) == {inside.pk, recently_closed.pk}
    assert "closed 1 day ago" in found[recently_closed.pk].reasons


def test_same_group_counts_other_groups_do_not(chicago_city):
    same_group = stored("RODENT", point=north(5))  # Sanitation, like SAN_CODE
    stored("POTHOLE", point=north(5))  # Streets
    same = stored("SAN_CODE", point=north(5))
    found = {c.request.pk: c for c in candidates(limit=10)}
    assert set(found) == {same_group.pk, same.pk}
    assert "same group (Sanitation)" in found[same_group.pk].reasons
    assert found[same.pk].score > found[same_group.pk].score


def test_category_radius_and_window_override_the_settings(chicago_city):
    san = category("SAN_CODE")
    stored(point=north(80), days_ago=1)
    stored(point=north(10), days_ago=10)
    assert len(candidates(limit=10)) == 2
    san.duplicate_radius_m = 50
    san.duplicate_window_days = 7
    san.save()
    assert candidates(limit=10) == []


def test_a_stored_request_sees_only_what_came_before_it(chicago_city):
    # Imports carry dates only: a day's requests are ordered by their public id.
    day = timezone.now() - dt.timedelta(days=3)
    first = stored(days_ago=3, public_id="11-00000001")
    second = stored(days_ago=3, public_id="11-00000002")
    ServiceRequest.objects.filter(pk__in=[first.pk, second.pk]).update(requested_at=day)
    found = candidates(at=day, public_id="11-00000002", exclude_id=second.pk)
    assert [c.request.pk for c in found] == [first.pk]
    assert candidates(at=day, public_id="11-00000001", exclude_id=first.pk) == []


def test_weights_come_from_settings(chicago_city, settings):
    stored(point=north(3), days_ago=1)
    before = candidates()[0].score
    settings.GEO311_DUPLICATE_WEIGHTS = {**settings.GEO311_DUPLICATE_WEIGHTS, "bias": 5.0}
    assert candidates()[0].score > before
    with pytest.raises(ValueError, match="missing open"):
        Weights.from_mapping(
            {k: v for k, v in settings.GEO311_DUPLICATE_WEIGHTS.items() if k != "open"}
        )


def test_the_replay_query_scores_as_the_single_query_does(chicago_city):
    """The evaluation runs CANDIDATES_TABLE over stored requests; it must agree with
    duplicate_candidates for the same request."""
    stored(point=north(4), days_ago=3, address="100 W Randolph St")
    stored(point=north(40), days_ago=1, address="120 W Randolph St", description="rats")
    probe = stored(point=HERE, days_ago=0.5, address="100 W RANDOLPH ST", source="replay-test")
    single = candidates(
        at=probe.requested_at,
        address=probe.address,
        public_id=probe.public_id,
        exclude_id=probe.pk,
    )
    with transaction.atomic():
        assert sql_duplicates.probes_from_requests(sources=["replay-test"]) == 1
        rows = sql_duplicates.candidates_table(params=query_params(limit=5))
    at = 1 + len(sql_duplicates.PROBE_COLUMNS)
    rows = [r[:1] + r[at:] for r in rows]
    score = sql_duplicates.COLUMNS.index("score") + 1
    assert [(r[1], round(r[score], 9)) for r in rows] == [
        (c.request.pk, round(c.score, 9)) for c in single
    ]
    assert len(rows) == 2


def test_address_keys_are_filled_for_bulk_written_rows(chicago_city):
    request = stored(address="")
    ServiceRequest.objects.filter(pk=request.pk).update(address="1600 West North Avenue")
    assert request_address_keys_fill() == 1
    request.refresh_from_db()
    assert request.address_key == "1600 W NORTH AVE"
    assert request_address_keys_fill() == 0


def test_candidates_are_one_query(chicago_city, django_assert_num_queries):
    stored(point=north(3))
    stored(point=north(30))
    san = category("SAN_CODE")
    with django_assert_num_queries(1):
        found = duplicate_candidates(category=san, point=HERE)
        assert [c.request.category.service_code for c in found] == ["SAN_CODE"] * 2
        assert [c.request.public_id for c in found]
        assert [c.open311_status for c in found] == ["open", "open"]


def test_candidates_below_a_minimum_score_are_left_out(chicago_city):
    near = stored(point=north(3))
    far = stored(point=north(200), days_ago=20)
    scores = {c.request.pk: c.score for c in candidates()}
    assert scores[far.pk] < scores[near.pk]
    between = (scores[far.pk] + scores[near.pk]) / 2
    assert [c.request.pk for c in candidates(min_score=between)] == [near.pk]
    assert candidates(min_score=scores[near.pk] + 1e-9) == []


# --- on submit -------------------------------------------------------------------------------


def test_submit_links_a_likely_duplicate_and_says_so(chicago_city):
    earlier = stored(point=north(2), days_ago=1, address="233 S Wacker Dr")
    request = request_create(
        category=category("SAN_CODE"),
        location=HERE,
        address="233 South Wacker Drive",
        answers={"NATURE": ["overflowing-carts"]},
    )
    request.refresh_from_db()
    assert request.possible_duplicate_of_id == earlier.pk
    assert request.duplicate_score is not None
    assert request.duplicate_score >= 0.5
    assert "same street address" in request.duplicate_reasons
    assert request.service_notice == (
        f"This looks like request {earlier.public_id} reported 1 day ago 2 m away; "
        "staff will check."
    )
    # Linked for triage, not merged: the new request is filed as any other.
    assert request.status.code == "submitted"
    assert request.address_key == "233 S WACKER DR"


def test_submit_without_a_likely_duplicate_links_nothing(chicago_city):
    stored(point=north(200), days_ago=25)
    request = request_create(
        category=category("SAN_CODE"), location=HERE, answers={"NATURE": ["other"]}
    )
    assert request.possible_duplicate_of is None
    assert request.duplicate_score is None
    assert request.duplicate_reasons == []
    assert request.service_notice == ""


def test_the_category_threshold_decides(chicago_city):
    stored(point=north(2), days_ago=1)
    san = category("SAN_CODE")
    san.duplicate_likely_score = 0.999
    san.save()
    request = request_create(category=san, location=HERE, answers={"NATURE": ["other"]})
    assert request.possible_duplicate_of is None


# --- the nearby API --------------------------------------------------------------------------


def test_nearby_lists_candidates_without_personal_data(chicago_city, client: Client):
    earlier = request_create(
        category=category("SAN_CODE"),
        location=north(3),
        address="233 S Wacker Dr",
        description="Carts overflowing behind the tower, call me",
        answers={"NATURE": ["overflowing-carts"]},
        reporter=REPORTER,
    )
    response = client.get(
        NEARBY_URL, {"lat": LAT, "lon": LON, "service_code": "SAN_CODE", "address": "233 S Wacker"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["service_code"] == "SAN_CODE"
    assert body["radius_m"] == 250.0
    assert body["window_days"] == 30
    [item] = body["candidates"]
    assert set(item) == {
        "public_id",
        "service_code",
        "service_name",
        "status",
        "requested_datetime",
        "address",
        "lat",
        "lon",
        "distance_m",
        "score",
        "likely",
        "reasons",
    }
    # The schema's shape is the answer's (the answer is built without the serializer).
    assert set(item) == set(NearbyCandidateSerializer().fields)
    assert item["public_id"] == earlier.public_id
    assert item["status"] == "open"
    assert item["service_name"] == "Sanitation code violation"
    assert math.isclose(item["distance_m"], 3.0, abs_tol=0.5)
    assert item["reasons"][0] == "3 m away"
    assert isinstance(item["likely"], bool)
    text = response.content.decode()
    for private in (*REPORTER.__dict__.values(), earlier.token, "call me"):
        assert private not in text


def test_nearby_is_one_query(chicago_city, client: Client, django_assert_num_queries):
    for metres in (3, 30, 60):
        stored(point=north(metres))
    with django_assert_num_queries(1):  # the category, its policy and the candidates
        response = client.get(
            NEARBY_URL, {"lat": LAT, "lon": LON, "service_code": "SAN_CODE", "limit": 2}
        )
    assert response.status_code == 200
    assert len(response.json()["candidates"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lon": LON, "service_code": "SAN_CODE"}, "lat"),
        ({"lat": "north", "lon": LON, "service_code": "SAN_CODE"}, "lat"),
        ({"lat": LAT, "lon": 200, "service_code": "SAN_CODE"}, "lon"),
        ({"lat": LAT, "lon": LON}, "service_code"),
        ({"lat": LAT, "lon": LON, "service_code": "NOPE"}, "service_code"),
        ({"lat": LAT, "lon": LON, "service_code": "SAN_CODE", "limit": 0}, "limit"),
    ],
)
def test_nearby_errors_name_the_field(chicago_city, client: Client, params, field):
    response = client.get(NEARBY_URL, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_nearby_answers_json_whatever_the_accept_header_asks(chicago_city, client: Client):
    params = {"lat": LAT, "lon": LON, "service_code": "SAN_CODE"}
    response = client.get(NEARBY_URL, params, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["service_code"] == "SAN_CODE"


def test_nearby_parameters_are_validated_per_request():
    """The nearby parameters' fields are shallow copies (ShallowFieldsMixin); each instance
    still validates its own data and keeps its own errors."""
    params = NearbyRequestsApi.InputSerializer
    good = params(data={"lat": "41.88", "lon": "-87.63", "service_code": "SAN_CODE"})
    bad = params(data={"lat": "north", "lon": "-87.63", "service_code": "SAN_CODE", "limit": 0})
    assert good.fields["lat"] is not bad.fields["lat"]
    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert set(bad.errors) == {"lat", "limit"}
    assert good.validated_data == {
        "lat": 41.88,
        "lon": -87.63,
        "service_code": "SAN_CODE",
        "limit": 5,
    }


def test_nearby_skips_retired_categories(chicago_city, client: Client):
    ServiceCategory.objects.filter(service_code="SIDEWALK").update(active=False)
    response = client.get(NEARBY_URL, {"lat": LAT, "lon": LON, "service_code": "SIDEWALK"})
    assert response.status_code == 400
    assert "SIDEWALK" in response.json()["service_code"][0]


def test_the_search_uses_the_geography_index(chicago_city):
    """With requests spread over the city, the planner finds candidates through the GiST index
    on the geography cast (the geometry index cannot answer a test in metres)."""
    import random

    rng = random.Random(311)
    san = category("SAN_CODE")
    status = Status.objects.get(code="submitted")
    now = timezone.now()
    ServiceRequest.objects.bulk_create(
        ServiceRequest(
            category=san,
            status=status,
            location=Point(LON + rng.uniform(-0.15, 0.15), LAT + rng.uniform(-0.15, 0.15)),
            requested_at=now - dt.timedelta(days=rng.uniform(0, 1000)),
            updated_at=now,
            public_id=f"bulk-{n}",
        )
        for n in range(3000)
    )
    params = {
        **query_params(limit=5),
        "category_id": san.pk,
        "service_code": None,
        "lon": LON,
        "lat": LAT,
        "at": now,
        "public_id": None,
        "address_key": "",
        "description": "",
        "exclude_id": None,
    }
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE geo311_servicerequest")
        cursor.execute("EXPLAIN " + sql_duplicates.CANDIDATES_ONE, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "servicerequest_geog_time_gist" in plan


# --- staff triage ----------------------------------------------------------------------------


def test_staff_see_and_filter_possible_duplicates(chicago_city, admin_client: Client):
    earlier = stored(point=north(2), days_ago=1, address="233 S Wacker Dr")
    linked = request_create(
        category=category("SAN_CODE"),
        location=HERE,
        address="233 S Wacker Dr",
        answers={"NATURE": ["other"]},
    )
    assert linked.possible_duplicate_of_id == earlier.pk
    page = admin_client.get(f"/admin/geo311/servicerequest/{linked.pk}/change/")
    assert page.status_code == 200
    assert "same street address" in page.content.decode()
    listing = admin_client.get(
        "/admin/geo311/servicerequest/", {"possible_duplicate_of__isempty": "0"}
    )
    assert listing.status_code == 200
    assert [r.pk for r in listing.context["cl"].result_list] == [linked.pk]
