"""The audit trail: database triggers record every change of a request (and of the configuration
staff edit) with who made it and the row before and after; bulk SQL updates included."""

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from django.test import Client

from geo311.models import ApiKey, RoutingRule, ServiceCategory, ServiceRequest, Status
from geo311.roles import DEPARTMENT_STAFF
from geo311.selectors import history_of
from geo311.services import Actor, request_create, request_transition
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

WARD_42 = Point(-87.6230, 41.8850, srid=4326)


def filed() -> ServiceRequest:
    return request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=WARD_42,
        answers={"NATURE": ["overflowing-carts"]},
    )


def changed(change) -> dict:  # type: ignore[no-untyped-def]
    return {f.field: (f.before, f.after) for f in change.fields}


def test_filing_a_request_adds_nothing_to_the_trail(chicago_city):
    # Its first status event records the creation; no insert trigger costs each POST.
    assert history_of(obj=filed()) == []


def test_a_transition_is_recorded_with_who_and_before_after(chicago_city):
    clerk = staff_user("clerk", DEPARTMENT_STAFF, "streets-sanitation")
    request = filed()
    request_transition(
        request=request, status=Status.objects.get(code="acknowledged"), actor=Actor(user=clerk)
    )
    [change] = history_of(obj=request)
    assert (change.action, change.user_id, change.actor) == ("update", clerk.pk, "clerk")
    fields = changed(change)
    submitted, acknowledged = (Status.objects.get(code=c).pk for c in ("submitted", "acknowledged"))
    assert fields["status_id"] == (submitted, acknowledged)
    assert set(fields) == {"status_id", "updated_at"}


def test_bulk_sql_updates_and_deletes_are_caught_too(chicago_city):
    request = filed()
    ServiceRequest.objects.filter(pk=request.pk).update(description="edited in bulk")
    ServiceRequest.objects.filter(pk=request.pk).update(description="edited in bulk")  # no-op
    snapshot_pk = request.pk
    request.delete()
    request.pk = snapshot_pk
    update, delete = history_of(obj=request)
    assert changed(update)["description"] == ("", "edited in bulk")
    assert (update.user_id, update.actor) == (None, "")  # no context: a script or psql
    assert delete.action == "delete"
    assert changed(delete)["description"] == ("edited in bulk", None)


def test_a_derived_column_alone_is_not_a_change(chicago_city):
    request = filed()
    ServiceRequest.objects.filter(pk=request.pk).update(address_key="1 N STATE ST")
    assert history_of(obj=request) == []


def test_config_changes_are_recorded_from_creation(chicago_city):
    rule = RoutingRule.objects.filter(team__isnull=False).first()
    assert rule is not None
    RoutingRule.objects.filter(pk=rule.pk).update(priority=5)
    changes = history_of(obj=rule)
    assert [c.action for c in changes] == ["insert", "update"]
    assert changed(changes[1])["priority"] == (0, 5)


def test_an_admin_edit_records_the_signed_in_user_and_the_page(chicago_city, client: Client):
    admin = User.objects.create_superuser("root", password="pw")
    key = ApiKey.objects.create(name="Work orders")
    client.force_login(admin)
    response = client.post(
        f"/admin/geo311/apikey/{key.pk}/change/",
        {"key": key.key, "name": "Work orders (CMMS)", "contact": "", "active": "on"},
    )
    assert response.status_code == 302, response.content
    insert, update = history_of(obj=key)
    assert insert.action == "insert"
    assert (update.user_id, update.url) == (admin.pk, f"/admin/geo311/apikey/{key.pk}/change/")
    assert changed(update)["name"] == ("Work orders", "Work orders (CMMS)")
