"""Following a request instead of filing it again (public): the count is public, who follows
never is."""

import pytest
from django.contrib.gis.geos import Point
from django.test import Client

from geo311.models import Follower, ServiceCategory, ServiceRequest
from geo311.roles import DEPARTMENT_STAFF
from geo311.services import Actor, Reporter, request_create, request_merge
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

BASE = "/api/v1/requests"
WARD_42 = Point(-87.6230, 41.8850, srid=4326)
PRIVATE = ("ada.private@example.org", "3125550199", "312-555-0199")


def filed(reporter: str = "reporter.private@example.org") -> ServiceRequest:
    return request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=WARD_42,
        answers={"NATURE": ["overflowing-carts"]},
        reporter=Reporter(email=reporter),
    )


def follow(client: Client, request: ServiceRequest, **data: str):  # type: ignore[no-untyped-def]
    return client.post(f"{BASE}/{request.public_id}/follow", data, content_type="application/json")


def test_follow_answers_the_count_and_never_who(client: Client, chicago_city):
    request = filed()
    response = follow(client, request, email="ada.private@example.org", phone="312-555-0199")
    assert response.status_code == 201
    assert response.json() == {"service_request_id": request.public_id, "followers": 1}
    # The same person again, and someone else: one follower more, not two.
    assert follow(client, request, email="ADA.private@example.org").json()["followers"] == 1
    assert follow(client, request, phone="+1 773 555 0100").json()["followers"] == 2
    count = client.get(f"{BASE}/{request.public_id}/followers")
    assert count.json() == {"service_request_id": request.public_id, "followers": 2}
    for response in (count, follow(client, request, email="ada.private@example.org")):
        text = response.content.decode()
        assert not any(p in text for p in PRIVATE)
        assert "token" not in text


def test_follow_names_the_field_to_fix(client: Client, chicago_city):
    request = filed()
    assert follow(client, request).json() == {"email": ["give an email address or a phone number"]}
    assert "email" in follow(client, request, email="nope").json()
    assert follow(client, request, phone="12").json() == {
        "phone": ["a phone number has 7 to 15 digits"]
    }
    assert follow(client, request, email="a@example.org", updates="hourly").status_code == 400
    missing = client.post(f"{BASE}/999999999/follow", {"email": "a@example.org"})
    assert missing.status_code == 404


def test_following_a_merged_duplicate_follows_the_original(client: Client, chicago_city):
    original, duplicate = filed(), filed(reporter="second.reporter@example.org")
    clerk = staff_user("clerk", DEPARTMENT_STAFF, "streets-sanitation")
    request_merge(duplicate=duplicate, parent=original, actor=Actor(user=clerk))
    response = follow(client, duplicate, email="late@example.org")
    assert response.json()["service_request_id"] == original.public_id
    # the duplicate's reporter moved to the original as a follower, and now this one
    assert response.json()["followers"] == 2
    count = client.get(f"{BASE}/{duplicate.public_id}/followers").json()
    assert count == {"service_request_id": original.public_id, "followers": 2}


def test_unsubscribe_with_the_token_of_the_message(client: Client, chicago_city):
    request = filed()
    follow(client, request, email="ada.private@example.org")
    token = Follower.objects.get(request=request).token
    response = client.post(f"{BASE}/unsubscribe", {"token": token})
    assert response.json() == {"service_request_id": request.public_id, "unsubscribed": True}
    assert client.get(f"{BASE}/{request.public_id}/followers").json()["followers"] == 0
    assert client.post(f"{BASE}/unsubscribe", {"token": "nope"}).status_code == 404
    # Following again subscribes again.
    assert follow(client, request, email="ada.private@example.org").json()["followers"] == 1
