"""Notification services in-process: the job queued with each change (and not without it),
who each event reaches, idempotent fan-out and sending, failures, unsubscribing, area alerts
and digests. The jobs are run here by calling the services the tasks wrap; the real worker,
SMTP server and Twilio stand-in are in test_live.py."""

import datetime as dt
import email.utils
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.gis.geos import Point
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from boundaries.models import Layer
from geo311.models import (
    Department,
    EventKind,
    Follower,
    ServiceCategory,
    ServiceRequest,
    Status,
    StatusEvent,
    Team,
)
from geo311.notifications import jobs, services
from geo311.notifications.channels import message_id
from geo311.notifications.messages import (
    CONFIRM_SALT,
    email_content,
    request_context,
    unsubscribe_token,
)
from geo311.notifications.models import (
    AreaSubscription,
    Channel,
    Delivery,
    DeliveryStatus,
    Frequency,
    Notify,
    Purpose,
    ReporterPreference,
    WebhookSubscription,
)
from geo311.notifications.services import DeliveryFailed
from geo311.notifications.sms import phone_e164
from geo311.roles import CREW, DEPARTMENT_STAFF, MANAGER
from geo311.services import (
    Actor,
    Reporter,
    request_assign,
    request_create,
    request_follow,
    request_merge,
    request_note_add,
    request_transition,
)
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

WARD_42 = Point(-87.6230, 41.8850, srid=4326)
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)
ADA = Reporter(first_name="Ada", email="ada@example.org", phone="312-555-0199")


@pytest.fixture(autouse=True)
def _sms_on(settings: Any) -> None:
    # Fan-out queues SMS only when a provider is configured; nothing is sent in these tests.
    settings.GEO311_SMS_BACKEND = "geo311.notifications.sms.ConsoleSms"
    settings.GEO311_TRACKING_URL = "https://311.example.org/requests/{public_id}/"
    settings.GEO311_SITE_URL = "https://311.example.org"


@pytest.fixture
def run_jobs(chicago_city: None) -> Iterator[Callable[[], list[str]]]:
    """Run the notification jobs queued so far, in order, as the worker would (fan-outs
    queue delivery jobs, which run in the same call). Returns the delivery outcomes."""
    seen = set(ProcrastinateJob.objects.values_list("id", flat=True))

    def run() -> list[str]:
        outcomes = []
        while True:
            todo = list(
                ProcrastinateJob.objects.filter(status="todo", queue_name=jobs.QUEUE)
                .exclude(id__in=seen)
                .order_by("id")
            )
            if not todo:
                return outcomes
            for job in todo:
                seen.add(job.id)
                if job.task_name == jobs.FAN_OUT:
                    services.event_fan_out(**job.args)
                elif job.task_name == jobs.DELIVER:
                    outcomes.append(services.delivery_send(last_attempt=False, **job.args))

    return run


def filed(code: str = "SIDEWALK", point: Point = WARD_42, **extra: Any) -> ServiceRequest:
    answers = {"SAN_CODE": {"NATURE": ["overflowing-carts"]}}.get(code, {})
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        answers=answers,
        **extra,
    )


def status(code: str) -> Status:
    return Status.objects.get(code=code)


@pytest.fixture
def clerk(chicago_city: None) -> Any:
    return staff_user("clerk", DEPARTMENT_STAFF, "transportation")


def fan_out_jobs() -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name=jobs.FAN_OUT).order_by("id"))


def to(recipient: str) -> list[Delivery]:
    return list(Delivery.objects.filter(recipient=recipient).order_by("pk"))


# --- the job and its transaction --------------------------------------------------------


def test_each_event_queues_one_job_with_its_change(chicago_city: None, clerk: Any) -> None:
    before = len(fan_out_jobs())
    request = filed(reporter=ADA)
    event = request_transition(
        request=request, status=status("acknowledged"), actor=Actor(user=clerk)
    )
    queued = fan_out_jobs()[before:]
    created = StatusEvent.objects.get(request=request, kind=EventKind.CREATED)
    assert [j.args for j in queued] == [{"event_id": created.pk}, {"event_id": event.pk}]
    assert {j.lock for j in queued} == {f"request:{request.pk}"}
    assert {j.queue_name for j in queued} == {jobs.QUEUE}


def test_a_change_rolled_back_takes_its_job_with_it(chicago_city: None, clerk: Any) -> None:
    request = filed(reporter=ADA)
    before = len(fan_out_jobs())

    class Abort(Exception):
        pass

    def change_then_fail() -> None:
        with transaction.atomic():
            request_transition(
                request=request, status=status("acknowledged"), actor=Actor(user=clerk)
            )
            assert len(fan_out_jobs()) == before + 1  # queued on the change's own connection
            raise Abort

    with pytest.raises(Abort):
        change_then_fail()
    assert len(fan_out_jobs()) == before
    assert not StatusEvent.objects.filter(request=request, kind=EventKind.STATUS).exists()


def test_a_refused_change_queues_nothing(chicago_city: None, clerk: Any) -> None:
    request = filed(reporter=ADA)
    before = len(fan_out_jobs())
    with pytest.raises(ValidationError):
        request_transition(request=request, status=status("completed"), actor=Actor(user=clerk))
    assert len(fan_out_jobs()) == before


def test_creation_queues_its_job_in_the_statement_that_writes_the_request(
    chicago_city: None,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        request = filed(reporter=ADA)
    job_queries = [q["sql"] for q in queries if "procrastinate" in (q["sql"] or "")]
    # One round trip for the request, its first event and the event's fan-out job.
    assert len(job_queries) == 1
    assert "INSERT INTO procrastinate_jobs" in job_queries[0]
    assert 'INSERT INTO "geo311_servicerequest"' in job_queries[0]
    event = StatusEvent.objects.get(request=request)
    [job] = ProcrastinateJob.objects.filter(args__event_id=event.pk)
    assert (job.task_name, job.queue_name, job.lock) == (
        jobs.FAN_OUT,
        jobs.QUEUE,
        jobs.request_lock(request_id=request.pk),
    )


# --- who hears of what -------------------------------------------------------------------


def test_submit_confirms_to_the_reporter_with_tracking_link_and_id(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA, address="100 N State St")
    assert run_jobs().count("sent") == 2  # the reporter and the department
    [confirmation] = to("ada@example.org")
    assert confirmation.purpose == Purpose.CONFIRMATION
    assert confirmation.status == DeliveryStatus.SENT
    sent = next(m for m in mail.outbox if m.to == ["ada@example.org"])
    assert request.public_id in sent.subject
    assert f"https://311.example.org/requests/{request.public_id}/" in sent.body
    assert request.public_id in sent.body
    html = sent.alternatives[0][0]  # type: ignore[attr-defined]
    assert f"https://311.example.org/requests/{request.public_id}/" in html
    assert sent.extra_headers["Message-ID"] == message_id(key=confirmation.key)
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = sent.extra_headers["List-Unsubscribe"].strip("<>")
    assert unsubscribe in sent.body
    assert not to("312-555-0199")
    assert not to("+13125550199")


def test_text_emails_are_not_html_escaped(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    filed(reporter=ADA, description="Crack & hole", address="State & Madison")
    run_jobs()
    sent = next(m for m in mail.outbox if m.to == ["ada@example.org"])
    assert "State & Madison" in sent.body
    assert "&amp;" not in sent.body
    assert "&amp;" not in sent.subject


def test_the_department_hears_of_new_work(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA, description="big crack")
    run_jobs()
    [alert] = to("cdot@example.org")
    assert alert.purpose == Purpose.STAFF_ASSIGNED
    assert request.public_id in alert.content["subject"]
    assert "big crack" in alert.content["text"]


def test_reporter_preferences(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    both = filed(reporter=ADA)
    services.reporter_preference_set(request=both, notify=Notify.BOTH)
    none = filed(reporter=Reporter(email="bob@example.org"))
    services.reporter_preference_set(request=none, notify=Notify.NONE)
    sms = filed(reporter=Reporter(email="cy@example.org", phone="+44 20 7946 0958"))
    services.reporter_preference_set(request=sms, notify=Notify.SMS)
    anonymous = filed()
    run_jobs()
    assert [d.channel for d in to("ada@example.org")] == [Channel.EMAIL]
    [text] = to("+13125550199")
    assert text.channel == Channel.SMS
    assert both.public_id in text.content["body"]
    assert "https://311.example.org/requests/" in text.content["body"]
    assert len(text.content["body"]) <= 320
    assert not to("bob@example.org")
    assert not to("cy@example.org")
    assert [d.channel for d in to("+442079460958")] == [Channel.SMS]
    assert not Delivery.objects.filter(event__request=anonymous).exclude(
        purpose=Purpose.STAFF_ASSIGNED
    )


def test_preferences_need_the_contact_they_use(chicago_city: None) -> None:
    request = filed(reporter=Reporter(email="ada@example.org"))
    with pytest.raises(ValidationError, match="phone"):
        services.reporter_preference_set(request=request, notify=Notify.SMS)
    with pytest.raises(ValidationError, match="one of"):
        services.reporter_preference_set(request=request, notify="pigeon")


def test_status_changes_reach_reporter_and_followers_who_want_them(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA)
    request_follow(request=request, email="every@example.org")
    request_follow(request=request, email="closed@example.org", updates="closed")
    request_follow(request=request, phone="773-555-0123")
    gone = request_follow(request=request, email="gone@example.org")
    services.unsubscribe(token=unsubscribe_token(kind="f", pk=gone.pk))
    run_jobs()
    actor = Actor(user=clerk)
    request_transition(
        request=request, status=status("in-progress"), actor=actor, public_note="Crew booked"
    )
    run_jobs()
    assert [d.purpose for d in to("ada@example.org")] == [Purpose.CONFIRMATION, Purpose.UPDATE]
    assert "Crew booked" in to("ada@example.org")[1].content["text"]
    assert [d.purpose for d in to("every@example.org")] == [Purpose.UPDATE]
    assert not to("closed@example.org")
    assert not to("gone@example.org")
    assert [d.channel for d in to("+17735550123")] == [Channel.SMS]

    request_transition(
        request=request,
        status=status("completed"),
        actor=actor,
        public_note="Filled and sealed",
        photo_url="https://photos.example.org/after.jpg",
        internal_note="used 2 bags",
    )
    run_jobs()
    done = to("ada@example.org")[-1]
    assert done.purpose == Purpose.COMPLETED
    assert done.content["subject"].startswith("Job done")
    assert "Filled and sealed" in done.content["text"]
    assert "https://photos.example.org/after.jpg" in done.content["html"]
    assert "used 2 bags" not in done.content["text"] + done.content["html"]
    assert [d.purpose for d in to("closed@example.org")] == [Purpose.COMPLETED]


def test_internal_changes_tell_no_resident(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA)
    run_jobs()
    request_note_add(request=request, actor=Actor(user=clerk), internal_note="check the permit")
    run_jobs()
    assert [d.purpose for d in to("ada@example.org")] == [Purpose.CONFIRMATION]


def test_a_merge_tells_the_duplicates_reporter_and_followers(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    parent = filed(reporter=Reporter(email="first@example.org"))
    duplicate = filed(reporter=ADA)
    request_follow(request=duplicate, email="follower@example.org")
    request_follow(request=parent, email="parentfan@example.org")
    run_jobs()
    request_merge(duplicate=duplicate, parent=parent, actor=Actor(user=clerk))
    run_jobs()
    [merged] = [d for d in to("ada@example.org") if d.purpose == Purpose.MERGED]
    assert parent.public_id in merged.content["subject"]
    assert f"https://311.example.org/requests/{parent.public_id}/" in merged.content["text"]
    assert [d.purpose for d in to("follower@example.org")] == [Purpose.MERGED]
    assert not to("parentfan@example.org")
    assert [d.purpose for d in to("first@example.org")] == [Purpose.CONFIRMATION]
    # From now on the duplicate's reporter hears about the parent.
    request_transition(request=parent, status=status("in-progress"), actor=Actor(user=clerk))
    run_jobs()
    assert to("ada@example.org")[-1].event.request_id == parent.pk  # type: ignore[union-attr]


def test_assignment_tells_the_new_team_and_crew_member(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    department = Department.objects.get(slug="transportation")
    team = Team.objects.get(department=department, slug="street-ops")
    team.email = "streetops@example.org"
    team.save()
    crew = staff_user("crew1", CREW, "transportation", "street-ops", email="crew1@example.org")
    clerk = staff_user("clerk2", DEPARTMENT_STAFF, "transportation")
    request = filed()
    run_jobs()
    request_assign(request=request, actor=Actor(user=clerk), assignee=crew, internal_note="asap")
    run_jobs()
    assert [d.purpose for d in to("crew1@example.org")] == [Purpose.STAFF_ASSIGNED]
    assert "asap" in to("crew1@example.org")[0].content["text"]
    assert [d.purpose for d in to("streetops@example.org")] == [Purpose.STAFF_ASSIGNED]


def test_webhooks_get_the_events_they_asked_for_signed(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    WebhookSubscription.objects.create(name="all", url="http://127.0.0.1:9/all")
    statuses = WebhookSubscription.objects.create(
        name="status", url="http://127.0.0.1:9/status", event_types=[EventKind.STATUS]
    )
    other = WebhookSubscription.objects.create(
        name="parks",
        url="http://127.0.0.1:9/parks",
        department=Department.objects.get(slug="parks"),
    )
    request = filed(reporter=ADA)
    request_transition(request=request, status=status("in-progress"), actor=Actor(user=clerk))
    for job in fan_out_jobs():
        services.event_fan_out(**job.args)
    sent = Delivery.objects.filter(channel=Channel.WEBHOOK, event__request=request)
    assert sorted((d.webhook.name, d.content["type"]) for d in sent) == [  # type: ignore[union-attr]
        ("all", "request.created"),
        ("all", "request.status"),
        ("status", "request.status"),
    ]
    payload = sent.get(webhook=statuses).content
    assert payload["request"]["service_request_id"] == request.public_id
    assert payload["event"]["status"] == "in-progress"
    assert "ada@example.org" not in str(payload)
    # The phone in every form a payload could carry it; a bare "555" also
    # turns up in a timestamp's microseconds.
    for phone in ("312-555-0199", "3125550199", "555-0199"):
        assert phone not in str(payload)
    assert not sent.filter(webhook=other)


def test_fan_out_twice_queues_nothing_twice(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA)
    event = StatusEvent.objects.get(request=request)
    first = services.event_fan_out(event_id=event.pk)
    deliver_jobs = ProcrastinateJob.objects.filter(task_name=jobs.DELIVER).count()
    assert first == 2
    assert services.event_fan_out(event_id=event.pk) == 0
    assert ProcrastinateJob.objects.filter(task_name=jobs.DELIVER).count() == deliver_jobs
    assert Delivery.objects.filter(event=event).count() == 2


def test_a_recipient_who_is_reporter_and_follower_gets_one_message(
    chicago_city: None, clerk: Any, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA)
    request_follow(request=request, email="ADA@example.org")
    request_transition(request=request, status=status("in-progress"), actor=Actor(user=clerk))
    run_jobs()
    assert [d.purpose for d in to("ada@example.org")] == [Purpose.CONFIRMATION, Purpose.UPDATE]


# --- sending -------------------------------------------------------------------------------


def test_a_delivery_is_sent_once(chicago_city: None, run_jobs: Callable[[], list[str]]) -> None:
    filed(reporter=ADA)
    run_jobs()
    [delivery] = to("ada@example.org")
    outbox = len(mail.outbox)
    assert services.delivery_send(delivery_id=delivery.pk, last_attempt=False) == "skipped"
    assert len(mail.outbox) == outbox
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.sent_at is not None


def test_failures_are_recorded_retried_and_finally_failed(
    chicago_city: None, settings: Any, run_jobs: Callable[[], list[str]]
) -> None:
    from geo311.notifications import channels

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    channels._drop_mail_connection()  # the worker thread's kept connection
    filed(reporter=ADA)
    services.event_fan_out(event_id=fan_out_jobs()[-1].args["event_id"])
    [delivery] = to("ada@example.org")
    with pytest.raises(DeliveryFailed, match="Connection refused|ConnectionRefused"):
        services.delivery_send(delivery_id=delivery.pk, last_attempt=False)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert "refused" in delivery.last_error.lower()
    with pytest.raises(DeliveryFailed):
        services.delivery_send(delivery_id=delivery.pk, last_attempt=True)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)

    # Staff retry it from the admin once the mail server is back.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    channels._drop_mail_connection()
    jobs_before = ProcrastinateJob.objects.filter(task_name=jobs.DELIVER).count()
    assert services.deliveries_retry(deliveries=[delivery]) == 1
    assert ProcrastinateJob.objects.filter(task_name=jobs.DELIVER).count() == jobs_before + 1
    # Its first job (never run here) and the retry's: one sends, the other finds it sent.
    outcomes = run_jobs()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert sorted(outcomes) == ["sent", "sent", "skipped"]  # + the department's alert
    assert [m.to for m in mail.outbox].count(["ada@example.org"]) == 1


def test_a_webhook_that_is_switched_off_fails_for_good(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    hook = WebhookSubscription.objects.create(name="w", url="http://127.0.0.1:9/x")
    filed()
    for job in fan_out_jobs():
        services.event_fan_out(**job.args)
    hook.active = False
    hook.save()
    delivery = Delivery.objects.get(webhook=hook)
    assert services.delivery_send(delivery_id=delivery.pk, last_attempt=False) == "failed"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "switched off" in delivery.last_error


# --- unsubscribing ------------------------------------------------------------------------


def test_unsubscribe_links_work_without_an_account(
    chicago_city: None, clerk: Any, client: Any, run_jobs: Callable[[], list[str]]
) -> None:
    request = filed(reporter=ADA)
    follower = request_follow(request=request, email="fan@example.org")
    run_jobs()
    link = to("ada@example.org")[0].content["headers"]["List-Unsubscribe"].strip("<>")
    path = link.removeprefix("https://311.example.org")
    page = client.get(path)
    assert page.status_code == 200
    assert b"<form" in page.content
    assert not ReporterPreference.objects.filter(request=request).exists()  # GET changes nothing
    # One-click (RFC 8058), as mail providers send it.
    done = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert ReporterPreference.objects.get(request=request).notify == Notify.NONE

    fan = client.post(f"/notifications/unsubscribe/{unsubscribe_token(kind='f', pk=follower.pk)}")
    assert fan.status_code == 200
    assert Follower.objects.get(pk=follower.pk).unsubscribed_at is not None

    request_transition(request=request, status=status("in-progress"), actor=Actor(user=clerk))
    run_jobs()
    assert [d.purpose for d in to("ada@example.org")] == [Purpose.CONFIRMATION]
    assert not to("fan@example.org")


def test_a_tampered_unsubscribe_link_is_refused(chicago_city: None, client: Any) -> None:
    request = filed(reporter=ADA)
    token = unsubscribe_token(kind="r", pk=request.pk)
    forged = signing.dumps({"k": "r", "id": request.pk}, salt="another")
    assert client.post(f"/notifications/unsubscribe/{forged}").status_code == 400
    assert client.post(f"/notifications/unsubscribe/{token[:-2]}xx").status_code == 400
    assert not ReporterPreference.objects.filter(request=request).exists()


# --- area alerts ---------------------------------------------------------------------------


def _confirm(subscription: AreaSubscription, client: Any) -> None:
    [confirm] = Delivery.objects.filter(purpose=Purpose.AREA_CONFIRM, recipient=subscription.email)
    link = confirm.content["text"].split("open this link: ")[1].split()[0]
    assert client.post(link.removeprefix("https://311.example.org")).status_code == 200


def test_area_alerts_by_boundary_and_radius_per_category(
    chicago_city: None, client: Any, run_jobs: Callable[[], list[str]]
) -> None:
    answer = client.post(
        "/api/v1/alerts",
        {"email": "ward42@example.org", "layer": "wards", "boundary_code": "42"},
        content_type="application/json",
    )
    assert answer.status_code == 202, answer.content
    client.post(
        "/api/v1/alerts",
        {
            "email": "near@example.org",
            "lat": WICKER_PARK.y,
            "lon": WICKER_PARK.x,
            "radius_m": 300,
            "service_codes": ["SAN_CODE"],
        },
        content_type="application/json",
    )
    unconfirmed = AreaSubscription.objects.get(email="ward42@example.org")
    filed(point=WARD_42)
    run_jobs()
    assert not Delivery.objects.filter(purpose=Purpose.AREA_ALERT)  # not confirmed yet
    _confirm(unconfirmed, client)
    _confirm(AreaSubscription.objects.get(email="near@example.org"), client)

    in_ward = filed(point=WARD_42)
    filed(point=Point(WICKER_PARK.x + 0.001, WICKER_PARK.y, srid=4326))  # another category
    san_near = filed("SAN_CODE", point=Point(WICKER_PARK.x + 0.001, WICKER_PARK.y, srid=4326))
    filed("SAN_CODE", point=Point(WICKER_PARK.x + 0.01, WICKER_PARK.y, srid=4326))  # 830 m
    run_jobs()
    alerts = Delivery.objects.filter(purpose=Purpose.AREA_ALERT)
    assert {(d.recipient, d.event.request_id) for d in alerts} == {  # type: ignore[union-attr]
        ("ward42@example.org", in_ward.pk),
        ("near@example.org", san_near.pk),
    }


def test_area_alert_input_is_checked(chicago_city: None, client: Any) -> None:
    def post(**body: Any) -> Any:
        return client.post("/api/v1/alerts", body, content_type="application/json")

    assert "boundary_code" in post(email="a@example.org", layer="wards", boundary_code="99").json()
    assert "layer" in post(email="a@example.org", layer="nope", boundary_code="1").json()
    assert "layer" in post(email="a@example.org").json()
    assert (
        "service_codes"
        in post(
            email="a@example.org", lat=41.9, lon=-87.6, radius_m=100, service_codes=["NOPE"]
        ).json()
    )


def test_daily_digest_sends_once_a_day_what_was_filed(
    chicago_city: None, run_jobs: Callable[[], list[str]]
) -> None:
    subscription = services.area_subscription_create(
        email="digest@example.org",
        layer=Layer.objects.get(slug="wards"),
        boundary_code="42",
        frequency=Frequency.DAILY,
    )
    services.area_subscription_confirm(
        token=signing.dumps({"id": subscription.pk}, salt=CONFIRM_SALT, compress=True)
    )
    first, second = filed(point=WARD_42), filed(point=WARD_42)
    filed(point=WICKER_PARK)
    run_jobs()
    assert not Delivery.objects.filter(purpose=Purpose.AREA_ALERT)  # daily: no immediate alert
    noon = timezone.now() + dt.timedelta(seconds=1)
    assert services.area_digests_send(at=noon) == 1
    assert services.area_digests_send(at=noon) == 0  # the same day again: nothing new, no repeat
    [digest] = Delivery.objects.filter(purpose=Purpose.AREA_DIGEST)
    assert first.public_id in digest.content["text"]
    assert second.public_id in digest.content["text"]
    assert digest.content["subject"].startswith("2 new reports")
    third = filed(point=WARD_42, requested_at=noon + dt.timedelta(hours=1))
    assert services.area_digests_send(at=noon + dt.timedelta(days=1)) == 1
    latest = Delivery.objects.filter(purpose=Purpose.AREA_DIGEST).order_by("-pk").first()
    assert third.public_id in latest.content["text"]  # type: ignore[union-attr]
    assert first.public_id not in latest.content["text"]  # type: ignore[union-attr]


def test_managers_get_the_overdue_digest(chicago_city: None) -> None:
    staff_user("boss", MANAGER, email="boss@example.org")
    late = filed(requested_at=timezone.now() - dt.timedelta(days=30))
    ServiceRequest.objects.filter(pk=late.pk).update(
        expected_at=timezone.now() - dt.timedelta(days=3)
    )
    at = timezone.now()
    assert services.overdue_digests_send(at=at) == 1
    assert services.overdue_digests_send(at=at) == 0
    [digest] = Delivery.objects.filter(purpose=Purpose.OVERDUE_DIGEST)
    assert digest.recipient == "boss@example.org"
    assert late.public_id in digest.content["text"]
    assert "3 days late" in digest.content["text"]
    assert "Transportation (CDOT)" in digest.content["text"]


# --- small parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "e164"),
    [
        ("312-555-0199", "+13125550199"),
        ("1 (312) 555-0199", "+13125550199"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("12", ""),
    ],
)
def test_phone_numbers_for_providers(given: str, e164: str) -> None:
    assert phone_e164(given) == e164


def test_message_ids_are_stable_per_delivery() -> None:
    key = services.delivery_key(scope="event:1", channel="email", recipient="A@example.org")
    assert key == services.delivery_key(scope="event:1", channel="email", recipient="a@example.org")
    assert key != services.delivery_key(scope="event:2", channel="email", recipient="a@example.org")
    parsed = email.utils.parseaddr(message_id(key=key))[1]
    assert parsed.endswith("@311.example.org")


def test_messages_are_translatable(chicago_city: None, client: Any) -> None:
    answer = client.post(
        "/api/v1/alerts",
        {"email": "es@example.org", "layer": "wards", "boundary_code": "42", "language": "es"},
        content_type="application/json",
    )
    assert answer.status_code == 202
    [confirm] = Delivery.objects.filter(recipient="es@example.org")
    assert confirm.content["subject"] == "Confirme su alerta de zona"
    assert "Para activar las alertas" in confirm.content["text"]
    request = filed(reporter=ADA)
    context = request_context(request=request)
    spanish = email_content(template="confirmation", context=context, language="es")
    assert spanish["subject"].startswith(f"Recibimos su reporte {request.public_id}")
    assert "Gracias: recibimos su reporte." in spanish["html"]
    english = email_content(template="confirmation", context=context, language="en-us")
    assert english["subject"].startswith(f"We received your report {request.public_id}")


def test_the_sql_fan_out_job_is_the_one_event_notify_queues(chicago_city: None) -> None:
    from django.db import connection

    from geo311.notifications.sql import FAN_OUT_JOBS_FOR_EVENTS

    request = filed()
    event = StatusEvent.objects.get(request=request)
    by_service = ProcrastinateJob.objects.filter(task_name=jobs.FAN_OUT).order_by("-id").first()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH ev AS (SELECT id, request_id FROM geo311_statusevent WHERE id = %s) "
            f"{FAN_OUT_JOBS_FOR_EVENTS} RETURNING id",
            [event.pk],
        )
        [(sql_id,)] = cursor.fetchall()
    by_sql = ProcrastinateJob.objects.get(id=sql_id)
    fields = ["queue_name", "task_name", "lock", "args", "status", "priority", "queueing_lock"]
    assert by_service is not None
    assert [getattr(by_sql, f) for f in fields] == [getattr(by_service, f) for f in fields]
    assert by_sql.scheduled_at is None
