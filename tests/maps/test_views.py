"""The planner page: staff with view_reports only; filters, map and charts from our own
static files."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_planner_page_needs_a_staff_login_with_view_reports(chicago_requests):
    anonymous = Client().get("/planner/")
    assert anonymous.status_code == 302
    assert anonymous["Location"] == "/admin/login/?next=/planner/"
    staff = User.objects.create_user("clerk", password="clerk-password-311", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/planner/").status_code == 403
    manager = User.objects.create_user("resident", password="resident-password-311")
    manager.user_permissions.add(Permission.objects.get(codename="view_reports"))
    client.force_login(manager)
    assert client.get("/planner/").status_code == 403  # not staff


def test_the_planner_page_offers_the_citys_filters(chicago_requests, planner_client):
    response = planner_client.get("/planner/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'value="SAN_CODE"' in body
    assert 'value="streets-sanitation"' in body
    assert '<option value="wards" selected>' in body
    assert 'value="city-limits"' not in body  # the outline is not something to group by
    # Leaflet from our own static files, no CDN.
    assert "/static/vendor/leaflet/leaflet.js" in body
    assert "/static/maps/planner.js" in body
    assert "https://" not in body.replace("https://tile.openstreetmap.org", "")
