"""Writes for notifications.

How a change reaches people:

1. ``event_notify`` runs inside the change's transaction (``geo311.services.
   request_event_record`` calls it for every event; request creation too): one job, one
   INSERT into procrastinate's table. No change without its job, no job without its change.
2. The worker runs ``event_fan_out``: who is told (reporter, followers, area subscribers,
   staff, webhooks), each message rendered and stored as a ``Delivery`` whose key (event ×
   recipient × channel) is unique, and one delivery job per new delivery, in one transaction.
   Run twice, it queues nothing twice.
3. ``delivery_send`` sends one delivery under a row lock and marks it sent in the same
   transaction; a delivery already sent is skipped. Failures are retried with backoff; the
   last failure marks it failed, for staff to see and retry.

At-least-once, honestly: if the process dies after the SMTP server's 250 (or the provider's
201) and before the commit, the message is sent again on retry. Emails keep their Message-ID
(derived from the key) and webhooks their X-Geo311-Delivery id, so receivers can drop the
repeat.
"""

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from procrastinate.types import JSONDict

from boundaries.models import Boundary, Layer, VersionStatus
from geo311.models import (
    EventKind,
    Follower,
    ServiceCategory,
    ServiceRequest,
    StatusEvent,
    Team,
)

from . import jobs, selectors
from .channels import DeliveryError, delivery_transmit
from .messages import (
    CONFIRM_SALT,
    UNSUBSCRIBE_SALT,
    Outgoing,
    confirm_url,
    email_content,
    request_context,
    site_url,
    sms_content,
    tracking_url,
    unsubscribe_url,
    webhook_payload,
)
from .models import (
    AreaSubscription,
    Channel,
    Delivery,
    DeliveryStatus,
    Frequency,
    Notify,
    Purpose,
    ReporterPreference,
)
from .sms import phone_e164, sms_enabled

log = logging.getLogger(__name__)


# --- 1. in the change's transaction -------------------------------------------------------


def event_notify(*, event: StatusEvent) -> None:
    """Queue the notifications of ``event`` (saved: its pk and request_id are set) in the
    transaction that wrote it. One job per event, whatever the number of recipients: the
    fan-out happens in the worker. Jobs of one request run in order."""
    jobs.jobs_defer(
        task_name=jobs.FAN_OUT,
        jobs=[(jobs.request_lock(request_id=event.request_id), {"event_id": event.pk})],
    )


def reporter_preference_check(*, notify: str, email: str, phone: str) -> None:
    """ValidationError (naming ``notify``) unless ``notify`` is a choice the given contact
    allows: check before filing, so a refused choice files nothing."""
    if notify not in Notify.values:
        raise ValidationError({"notify": f"one of {', '.join(Notify.values)}"})
    if notify in (Notify.EMAIL, Notify.BOTH) and not email:
        raise ValidationError({"notify": "messages by email need an email address"})
    if notify in (Notify.SMS, Notify.BOTH) and not phone:
        raise ValidationError({"notify": "messages by SMS need a phone number"})


@transaction.atomic
def reporter_preference_set(*, request: ServiceRequest, notify: str) -> ReporterPreference:
    """How the reporter of ``request`` wants to hear of it: email, sms, both or none."""
    reporter_preference_check(
        notify=notify, email=request.reporter_email, phone=request.reporter_phone
    )
    preference, _ = ReporterPreference.objects.update_or_create(
        request=request, defaults={"notify": notify, "updated_at": timezone.now()}
    )
    return preference


# --- 2. fan-out (worker) ------------------------------------------------------------------


@transaction.atomic
def event_fan_out(*, event_id: int) -> int:
    """Everyone ``event`` concerns, as stored deliveries with their jobs; returns how many
    were new. An event that no longer exists (its request was deleted) tells nobody."""
    event = selectors.event_for_fan_out(event_id=event_id)
    if event is None:
        return 0
    messages = [
        *_resident_messages(event),
        *_staff_messages(event),
        *_area_messages(event),
        *_webhook_messages(event),
    ]
    return len(deliveries_queue(messages=messages, event=event))


def delivery_key(*, scope: str, channel: str, recipient: str) -> str:
    """The idempotency key: one message per scope (an event, a digest) × channel × recipient."""
    return hashlib.sha256(f"{scope}|{channel}|{recipient.strip().lower()}".encode()).hexdigest()


def deliveries_queue(
    *, messages: Iterable[Outgoing], event: StatusEvent | None = None
) -> list[Delivery]:
    """Store the deliveries not stored yet (by key) and queue one job for each, in the current
    transaction. Returns the new ones."""
    now = timezone.now()
    by_key: dict[str, Delivery] = {}
    for m in messages:
        key = delivery_key(scope=m.scope, channel=m.channel, recipient=m.recipient)
        by_key.setdefault(
            key,
            Delivery(
                key=key,
                event=event,
                channel=m.channel,
                purpose=m.purpose,
                recipient=m.recipient,
                webhook_id=m.webhook_id,
                content=m.content,
                created_at=now,
            ),
        )
    if not by_key:
        return []
    known = set(Delivery.objects.filter(key__in=list(by_key)).values_list("key", flat=True))
    new = Delivery.objects.bulk_create([d for k, d in by_key.items() if k not in known])
    _deliveries_defer(new)
    return new


def _deliveries_defer(deliveries: Sequence[Delivery]) -> None:
    queued: list[tuple[str | None, JSONDict]] = []
    for d in deliveries:
        request_id = d.event.request_id if d.event is not None else None
        lock = jobs.recipient_lock(channel=d.channel, recipient=d.recipient, request_id=request_id)
        queued.append((lock, {"delivery_id": d.pk}))
    jobs.jobs_defer(task_name=jobs.DELIVER, jobs=queued)


def _language() -> str:
    return settings.LANGUAGE_CODE


def _resident_messages(event: StatusEvent) -> list[Outgoing]:
    """The reporter's and followers' messages: confirmation on submit, each public status
    change or public note, completion, merge into another request."""
    request = event.request
    if not event.public:
        return []
    closing = event.kind == EventKind.STATUS and event.status.open311_status == "closed"
    to_followers: Iterable[Follower] = []
    if event.kind == EventKind.CREATED:
        purpose = Purpose.CONFIRMATION
    elif event.kind in (EventKind.STATUS, EventKind.NOTE):
        purpose = Purpose.COMPLETED if closing else Purpose.UPDATE
        to_followers = selectors.followers_to_tell(request=request, closing=closing)
    elif event.kind == EventKind.MERGED and request.duplicate_of_id:
        purpose = Purpose.MERGED
        assert request.duplicate_of is not None
        to_followers = selectors.followers_moved(duplicate=request, parent=request.duplicate_of)
    else:
        return []
    context = request_context(request=request, event=event)
    if request.duplicate_of is not None:
        parent = request.duplicate_of
        context.update(parent_id=parent.public_id, parent_url=tracking_url(request=parent))
    scope = f"event:{event.pk}"
    out: list[Outgoing] = []

    def tell(*, email: str, phone: str, unsubscribe: str) -> None:
        if email:
            content = email_content(
                template=purpose,
                context=context,
                language=_language(),
                unsubscribe=unsubscribe,
            )
            out.append(Outgoing(scope, Channel.EMAIL, purpose, email, content))
        number = phone_e164(phone) if phone and sms_enabled() else ""
        if number:
            content = sms_content(template=purpose, context=context, language=_language())
            out.append(Outgoing(scope, Channel.SMS, purpose, number, content))

    notify = selectors.reporter_notify(request=request)
    tell(
        email=request.reporter_email if notify in (Notify.EMAIL, Notify.BOTH) else "",
        phone=request.reporter_phone if notify in (Notify.SMS, Notify.BOTH) else "",
        unsubscribe=unsubscribe_url(kind="r", pk=request.pk),
    )
    for follower in to_followers:
        # A follower gave the contact they want to be told on.
        tell(
            email=follower.email,
            phone=follower.phone,
            unsubscribe=unsubscribe_url(kind="f", pk=follower.pk),
        )
    return out


def _staff_messages(event: StatusEvent) -> list[Outgoing]:
    """New work for a department, team or crew member: a new request routed to them, an
    assignment, a pin moved into another department."""
    request = event.request
    emails: list[str] = []
    if event.kind == EventKind.CREATED:
        team_email = request.team.email if request.team else ""
        emails.append(team_email or (request.department.email if request.department else ""))
    elif event.kind == EventKind.ASSIGNED:
        data = event.data or {}
        if data.get("team") and data.get("team") != data.get("previous_team"):
            team = Team.objects.filter(department=request.department, slug=data["team"]).first()
            emails.append(team.email if team else "")
        if data.get("assignee") and data.get("assignee") != data.get("previous_assignee"):
            assignee = request.assignee
            emails.append(assignee.email if assignee else "")
    elif event.kind == EventKind.MOVED:
        data = event.data or {}
        moved_to = (data.get("to") or {}).get("department")
        if moved_to and moved_to != (data.get("from") or {}).get("department"):
            emails.append(request.department.email if request.department else "")
    emails = [e for e in dict.fromkeys(emails) if e]
    if not emails:
        return []
    context = {
        **request_context(request=request, event=event),
        "kind": event.get_kind_display(),
        "department": request.department.name if request.department else "",
        "team": request.team.name if request.team else "",
        "description": request.description,
        "internal_note": event.internal_note,
        "staff_url": site_url(f"/admin/geo311/servicerequest/{request.pk}/change/"),
    }
    content = email_content(template=Purpose.STAFF_ASSIGNED, context=context, language=_language())
    return [
        Outgoing(f"event:{event.pk}", Channel.EMAIL, Purpose.STAFF_ASSIGNED, email, content)
        for email in emails
    ]


def _area_messages(event: StatusEvent) -> list[Outgoing]:
    """Immediate area alerts of a new request (daily ones wait for the digest)."""
    if event.kind != EventKind.CREATED:
        return []
    request = event.request
    out = []
    for subscription in selectors.area_subscriptions_for(request=request):
        context = {**request_context(request=request), "description": request.description}
        content = email_content(
            template=Purpose.AREA_ALERT,
            context=context,
            language=subscription.language,
            unsubscribe=unsubscribe_url(kind="a", pk=subscription.pk),
        )
        out.append(
            Outgoing(
                f"event:{event.pk}", Channel.EMAIL, Purpose.AREA_ALERT, subscription.email, content
            )
        )
    return out


def _webhook_messages(event: StatusEvent) -> list[Outgoing]:
    request = event.request
    subscriptions = list(selectors.webhooks_for(kind=event.kind, request=request))
    if not subscriptions:
        return []
    payload = webhook_payload(event=event, request=request)
    return [
        Outgoing(
            f"event:{event.pk}:webhook:{s.pk}",
            Channel.WEBHOOK,
            Purpose.WEBHOOK,
            s.url,
            payload,
            webhook_id=s.pk,
        )
        for s in subscriptions
    ]


# --- 3. sending (worker) ------------------------------------------------------------------


class DeliveryFailed(Exception):
    """A delivery attempt failed and will be retried (the job re-raises it)."""


def delivery_send(*, delivery_id: int, last_attempt: bool) -> str:
    """Send one delivery, once: under a row lock (a second job for it waits, then finds it
    sent), marked sent in the transaction that sent it. Returns what happened: ``sent``,
    ``skipped`` (already sent or gone), ``failed`` (a permanent error, or the last attempt).
    Raises DeliveryFailed after recording a temporary failure, so the job retries."""
    error: BaseException | None = None
    with transaction.atomic():
        try:
            delivery = (
                Delivery.objects.select_for_update(of=("self",))
                .select_related("webhook")
                .get(pk=delivery_id)
            )
        except Delivery.DoesNotExist:
            return "skipped"
        if delivery.status == DeliveryStatus.SENT:
            return "skipped"
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_attempt_at = now
        try:
            sent = delivery_transmit(delivery=delivery)
        except DeliveryError as exc:
            error = exc
            permanent = exc.permanent
        except Exception as exc:  # noqa: BLE001  (any other failure is temporary: retried)
            error = exc
            permanent = False
        if error is None:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = now
            delivery.provider_id = sent.provider_id[:200]
            delivery.response = sent.response
            delivery.last_error = ""
        else:
            delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
            if permanent or last_attempt:
                delivery.status = DeliveryStatus.FAILED
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "last_attempt_at",
                "sent_at",
                "provider_id",
                "response",
                "last_error",
            ]
        )
    if error is None:
        return "sent"
    if delivery.status == DeliveryStatus.FAILED and permanent:
        log.warning("delivery %s failed for good: %s", delivery_id, delivery.last_error)
        return "failed"
    raise DeliveryFailed(delivery.last_error) from error


@transaction.atomic
def deliveries_retry(*, deliveries: Iterable[Delivery]) -> int:
    """Send failed deliveries again (the admin's retry action): pending, with a new job each.
    Returns how many."""
    failed = list(
        Delivery.objects.select_for_update(of=("self",))
        .select_related("event")
        .filter(pk__in=[d.pk for d in deliveries], status=DeliveryStatus.FAILED)
        .order_by("pk")
    )
    for d in failed:
        d.status = DeliveryStatus.PENDING
        d.attempts = 0
        d.save(update_fields=["status", "attempts"])
    _deliveries_defer(failed)
    return len(failed)


# --- unsubscribing, area subscriptions -----------------------------------------------------


@transaction.atomic
def unsubscribe(*, token: str) -> str:
    """Stop what a signed unsubscribe token names (no account needed); returns what stopped,
    in words. ValidationError for a token that is not ours."""
    try:
        value = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        kind, pk = value["k"], int(value["id"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ValidationError({"token": "this link is not valid (was it copied whole?)"}) from None
    now = timezone.now()
    if kind == "r":
        request = ServiceRequest.objects.filter(pk=pk).first()
        if request is None:
            raise ValidationError({"token": "the request no longer exists"})
        ReporterPreference.objects.update_or_create(
            request=request, defaults={"notify": Notify.NONE, "updated_at": now}
        )
        return f"messages about request {request.public_id}"
    if kind == "f":
        follower = Follower.objects.filter(pk=pk).select_related("request").first()
        if follower is None:
            raise ValidationError({"token": "you no longer follow this request"})
        # geo311.services imports this module (event_notify): imported here, not above.
        from geo311.services import follower_unsubscribe

        follower_unsubscribe(token=follower.token)
        return f"messages about request {follower.request.public_id}"
    if kind == "a":
        updated = AreaSubscription.objects.filter(pk=pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now
        )
        if not updated and not AreaSubscription.objects.filter(pk=pk).exists():
            raise ValidationError({"token": "the alert no longer exists"})
        return "this area alert"
    raise ValidationError({"token": "this link is not valid"})


@transaction.atomic
def area_subscription_create(
    *,
    email: str,
    layer: Layer | None = None,
    boundary_code: str = "",
    center: Point | None = None,
    radius_m: int | None = None,
    categories: Sequence[ServiceCategory] = (),
    frequency: str = Frequency.IMMEDIATE,
    language: str = "",
) -> AreaSubscription:
    """Subscribe ``email`` to new reports in a boundary (``layer`` + ``boundary_code``) or
    within ``radius_m`` metres of ``center`` (EPSG:4326), of ``categories`` (none: all). It
    starts unconfirmed; a confirmation email is queued in the same transaction."""
    if (layer is None) == (center is None):
        raise ValidationError({"area": "give a boundary (layer and code) or a point and radius"})
    if (
        layer is not None
        and not Boundary.objects.filter(
            version__layer=layer, version__status=VersionStatus.ACTIVE, code=boundary_code
        ).exists()
    ):
        raise ValidationError({"boundary_code": f"{layer.slug} has no boundary '{boundary_code}'"})
    subscription = AreaSubscription(
        email=email.strip().lower(),
        layer=layer,
        boundary_code=boundary_code if layer else "",
        center=center,
        radius_m=radius_m if center else None,
        frequency=frequency,
        language=language or settings.LANGUAGE_CODE,
        created_at=timezone.now(),
    )
    subscription.full_clean(exclude=["layer"])
    subscription.save()
    subscription.categories.set(categories)
    where = f"{layer.name} {boundary_code}" if layer else f"{radius_m} m around the point you chose"
    content = email_content(
        template=Purpose.AREA_CONFIRM,
        context={
            "where": where,
            "categories": [c.name for c in categories],
            "frequency": subscription.get_frequency_display(),
            "confirm_url": confirm_url(subscription_id=subscription.pk),
        },
        language=subscription.language,
    )
    deliveries_queue(
        messages=[
            Outgoing(
                f"area-confirm:{subscription.pk}",
                Channel.EMAIL,
                Purpose.AREA_CONFIRM,
                subscription.email,
                content,
            )
        ]
    )
    return subscription


@transaction.atomic
def area_subscription_confirm(*, token: str) -> AreaSubscription:
    """Switch on the subscription a confirmation link names."""
    try:
        pk = int(signing.loads(token, salt=CONFIRM_SALT)["id"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ValidationError({"token": "this link is not valid (was it copied whole?)"}) from None
    subscription = AreaSubscription.objects.select_for_update().filter(pk=pk).first()
    if subscription is None:
        raise ValidationError({"token": "the alert no longer exists"})
    if subscription.confirmed_at is None:
        subscription.confirmed_at = timezone.now()
        subscription.digest_through = subscription.confirmed_at
        subscription.save(update_fields=["confirmed_at", "digest_through"])
    return subscription


# --- digests (periodic) ----------------------------------------------------------------------


def area_digests_send(*, at: dt.datetime) -> int:
    """The daily digest of each daily area subscription: the reports filed in its area since
    its last digest, in one email (none when nothing was filed). One transaction per
    subscription; keyed by subscription and day, so a rerun of the same day sends nothing
    twice. Returns how many digests were queued."""
    queued = 0
    subscriptions = AreaSubscription.objects.select_related("layer").filter(
        frequency=Frequency.DAILY, confirmed_at__isnull=False, unsubscribed_at__isnull=True
    )
    for subscription in subscriptions.order_by("pk"):
        with transaction.atomic():
            since = subscription.digest_through or (at - dt.timedelta(days=1))
            requests = list(
                selectors.digest_requests(subscription=subscription, since=since, until=at)[:200]
            )
            if requests:
                content = email_content(
                    template=Purpose.AREA_DIGEST,
                    context={
                        "requests": [request_context(request=r) for r in requests],
                        "since": since,
                    },
                    language=subscription.language,
                    unsubscribe=unsubscribe_url(kind="a", pk=subscription.pk),
                )
                scope = f"area-digest:{subscription.pk}:{at.date().isoformat()}"
                queued += len(
                    deliveries_queue(
                        messages=[
                            Outgoing(
                                scope,
                                Channel.EMAIL,
                                Purpose.AREA_DIGEST,
                                subscription.email,
                                content,
                            )
                        ]
                    )
                )
            AreaSubscription.objects.filter(pk=subscription.pk).update(digest_through=at)
    return queued


@transaction.atomic
def overdue_digests_send(*, at: dt.datetime) -> int:
    """Each manager's daily list of open requests past their expected time, by department.
    Keyed by manager and day. Returns how many digests were queued."""
    overdue = list(selectors.overdue_requests(at=at)[:500])
    if not overdue:
        return 0
    by_department: dict[str, list[dict[str, Any]]] = {}
    for r in overdue:
        name = r.department.name if r.department else "-"
        by_department.setdefault(name, []).append(
            {
                **request_context(request=r),
                "late_days": (at - r.expected_at).days if r.expected_at else 0,
                "staff_url": site_url(f"/admin/geo311/servicerequest/{r.pk}/change/"),
            }
        )
    total = selectors.overdue_requests(at=at).count()
    content = email_content(
        template=Purpose.OVERDUE_DIGEST,
        context={"departments": sorted(by_department.items()), "total": total, "at": at},
        language=_language(),
    )
    day = at.date().isoformat()
    return len(
        deliveries_queue(
            messages=[
                Outgoing(
                    f"overdue:{user.pk}:{day}",
                    Channel.EMAIL,
                    Purpose.OVERDUE_DIGEST,
                    user.email,
                    content,
                )
                for user in selectors.managers_to_tell()
            ]
        )
    )
