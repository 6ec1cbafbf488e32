"""The public tracking page that messages link to: public fields and history only, and the
address of its live event stream."""

from typing import Any

import pytest
from django.contrib.gis.geos import Point

from geo311.models import ServiceCategory, Status
from geo311.services import Actor, Reporter, request_create, request_transition

pytestmark = pytest.mark.django_db


def test_the_tracking_page_shows_public_history_only(
    chicago_city: None, client: Any, settings: Any
) -> None:
    settings.GEO311_EVENTS_URL = "https://events.example.org"
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SIDEWALK"),
        location=Point(-87.6230, 41.8850, srid=4326),
        reporter=Reporter(email="private@example.org", phone="312-555-0100"),
        address="100 E Randolph St",
    )
    event = request_transition(
        request=request,
        status=Status.objects.get(code="in-progress"),
        actor=Actor(),
        public_note="Crew booked for Tuesday",
        internal_note="permit pending",
    )
    page = client.get(f"/requests/{request.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "In progress" in html
    assert "Crew booked for Tuesday" in html
    assert "100 E Randolph St" in html
    for private in ("permit pending", "private@example.org", "555-0100"):
        assert private not in html
    assert f"https://events.example.org/api/v1/requests/{request.public_id}/events" in html
    assert f"{event.pk}</script>" in html  # the stream resumes after the last event shown


def test_an_unknown_request_has_no_tracking_page(chicago_city: None, client: Any) -> None:
    assert client.get("/requests/nope/").status_code == 404


def test_staff_see_failed_jobs_and_deliveries_and_retry_them(
    chicago_city: None, client: Any, django_assert_max_num_queries: Any
) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from geo311.notifications.models import Channel, Delivery, DeliveryStatus, Purpose

    admin = User.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(admin)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)"
            " VALUES ('notifications', 'notifications.deliver', '{\"delivery_id\": 1}',"
            " 'failed', 15), ('notifications', 'notifications.deliver', '{}', 'succeeded', 1)"
            " RETURNING id"
        )
        failed_id = cursor.fetchall()[0][0]
    for n in range(3):
        Delivery.objects.create(
            key=f"k{n}",
            channel=Channel.EMAIL,
            purpose=Purpose.CONFIRMATION,
            recipient=f"r{n}@example.org",
            content={"subject": "s", "text": "t", "html": ""},
            status=DeliveryStatus.FAILED,
            last_error="SMTPServerDisconnected: gone",
            created_at=timezone.now(),
        )
    page = client.get("/admin/notifications/failedjob/")
    assert page.status_code == 200
    assert f">{failed_id}<" in page.content.decode()
    with django_assert_max_num_queries(12):
        deliveries = client.get("/admin/notifications/delivery/?status__exact=failed")
    assert deliveries.status_code == 200
    assert deliveries.content.decode().count("SMTPServerDisconnected") == 3

    client.post(
        "/admin/notifications/failedjob/",
        {"action": "retry", "_selected_action": [failed_id]},
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [failed_id])
        assert cursor.fetchone()[0] == "todo"
    client.post(
        "/admin/notifications/delivery/",
        {
            "action": "retry",
            "_selected_action": list(Delivery.objects.values_list("pk", flat=True)),
        },
    )
    assert not Delivery.objects.filter(status=DeliveryStatus.FAILED).exists()
