"""What a message says: emails and SMS rendered from translatable templates
(``templates/notifications/``), webhook payloads as JSON. Rendered once, when the delivery is
queued, and stored with it."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import signing
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from geo311.models import ServiceRequest, StatusEvent

UNSUBSCRIBE_SALT = "geo311.notifications.unsubscribe"
CONFIRM_SALT = "geo311.notifications.area-confirm"
SMS_MAX = 320  # two SMS segments


@dataclass(frozen=True)
class Outgoing:
    """One message to queue: ``scope`` (the event or digest it belongs to), channel and
    recipient make its idempotency key."""

    scope: str
    channel: str
    purpose: str
    recipient: str
    content: dict[str, Any]
    webhook_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def site_url(path: str) -> str:
    return settings.GEO311_SITE_URL + path


def tracking_url(*, request: ServiceRequest) -> str:
    return settings.GEO311_TRACKING_URL.format(public_id=request.public_id)


def unsubscribe_token(*, kind: str, pk: int) -> str:
    """A signed, account-free token naming what to stop: ``r`` a reporter's messages about
    one request, ``f`` a follower, ``a`` an area subscription (django.core.signing: tamper-
    proof with the secret key, nothing stored)."""
    return signing.dumps({"k": kind, "id": pk}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(*, kind: str, pk: int) -> str:
    token = unsubscribe_token(kind=kind, pk=pk)
    return site_url(reverse("notifications:unsubscribe", args=[token]))


def confirm_url(*, subscription_id: int) -> str:
    token = signing.dumps({"id": subscription_id}, salt=CONFIRM_SALT, compress=True)
    return site_url(reverse("notifications:area-confirm", args=[token]))


def email_content(
    *, template: str, context: dict[str, Any], language: str, unsubscribe: str = ""
) -> dict[str, Any]:
    """Subject, plain text and HTML of ``notifications/email/<template>``, in ``language``;
    with an unsubscribe URL, the List-Unsubscribe headers too (one-click, RFC 8058)."""
    context = {"city": settings.GEO311_CITY_NAME, "unsubscribe_url": unsubscribe, **context}
    with translation.override(language):
        subject = render_to_string(f"notifications/email/{template}_subject.txt", context)
        text = render_to_string(f"notifications/email/{template}.txt", context)
        html = render_to_string(f"notifications/email/{template}.html", context)
    content: dict[str, Any] = {
        "subject": " ".join(subject.split()),
        "text": text.strip() + "\n",
        "html": html,
    }
    if unsubscribe:
        content["headers"] = {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return content


def sms_content(*, template: str, context: dict[str, Any], language: str) -> dict[str, Any]:
    context = {"city": settings.GEO311_CITY_NAME, **context}
    with translation.override(language):
        body = " ".join(render_to_string(f"notifications/sms/{template}.txt", context).split())
    if len(body) > SMS_MAX:
        body = body[: SMS_MAX - 1] + "…"
    return {"body": body}


def request_context(*, request: ServiceRequest, event: StatusEvent | None = None) -> dict:
    """What resident messages may say about a request: public fields only."""
    context: dict[str, Any] = {
        "public_id": request.public_id,
        "service_name": request.category.name,
        "address": request.address,
        "requested_at": request.requested_at,
        "status_name": request.status.name,
        "closed": request.status.open311_status == "closed",
        "tracking_url": tracking_url(request=request),
        "expected_at": request.expected_at,
    }
    if event is not None:
        context.update(
            note=event.note if event.public else "",
            photo_url=event.photo_url if event.public else "",
            status_name=event.status.name,
            previous_status_name=event.previous_status.name if event.previous_status else "",
            done=event.status.code in settings.GEO311_DONE_STATUSES,
            event_at=event.created_at,
        )
    return context


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def webhook_payload(*, event: StatusEvent, request: ServiceRequest) -> dict[str, Any]:
    """The JSON a webhook receives for ``event``: the event (with its internal note: the
    receivers are city systems staff set up) and the request's Open311 fields, department and
    team; never the reporter's contact."""
    return {
        "type": f"request.{event.kind}",
        "event": {
            "id": event.pk,
            "kind": event.kind,
            "status": event.status.code,
            "previous_status": event.previous_status.code if event.previous_status else None,
            "note": event.note,
            "internal_note": event.internal_note,
            "photo_url": event.photo_url,
            "public": event.public,
            "datetime": _iso(event.created_at),
            "actor": event.actor,
            "data": event.data,
        },
        "request": {
            "service_request_id": request.public_id,
            "service_code": request.category.service_code,
            "service_name": request.category.name,
            "status": request.status.open311_status,
            "detailed_status": request.status.code,
            "department": request.department.slug if request.department else None,
            "team": request.team.slug if request.team else None,
            "address": request.address,
            "lat": request.location.y,
            "long": request.location.x,
            "description": request.description,
            "media_url": request.media_url,
            "requested_datetime": _iso(request.requested_at),
            "updated_datetime": _iso(request.updated_at),
            "expected_datetime": _iso(request.expected_at),
            "parent_service_request_id": (
                request.duplicate_of.public_id if request.duplicate_of else None
            ),
            "url": tracking_url(request=request),
        },
    }
