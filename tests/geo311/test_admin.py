"""The request admin: staff read a request's events, followers and merge link there; its status
is read-only (status changes go through the city's transitions, in the staff API)."""

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from django.test import Client

from geo311.models import ServiceCategory
from geo311.services import request_create, request_follow

pytestmark = pytest.mark.django_db


def test_request_change_page_shows_events_and_followers_with_status_read_only(chicago_city):
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=Point(-87.6230, 41.8850, srid=4326),
        answers={"NATURE": ["overflowing-carts"]},
    )
    request_follow(request=request, email="neighbour@example.org")
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    page = client.get(f"/admin/geo311/servicerequest/{request.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "neighbour@example.org" in html
    assert "Received" in html
    assert 'name="status"' not in html  # read-only: shown, not editable
