"""Pages and streams: the live event stream of a request (Server-Sent Events, ASGI), the
account-free unsubscribe and area-alert confirmation pages, and the public tracking page the
messages link to."""

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db.transaction import non_atomic_requests
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from geo311.models import ServiceRequest, StatusEvent

from . import services
from .live import RESYNC, event_hub
from .selectors import request_events_after

PRIVATE_KEYS = ("public", "internal_note", "actor")


def _cors(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """EventSource from the site's pages when the stream is served from another origin."""
    origin = request.headers.get("Origin", "")
    if origin and origin in settings.GEO311_EVENTS_CORS_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
        response["Vary"] = "Origin"
    return response


def _sse(event: dict[str, Any]) -> str:
    return f"id: {event['id']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _for_client(event: dict[str, Any], private: bool) -> dict[str, Any] | None:
    if private:
        return event
    if not event.get("public", True):
        return None
    return {k: v for k, v in event.items() if k not in PRIVATE_KEYS}


def _may_see_private(user: Any, request: ServiceRequest) -> bool:
    return bool(user.is_authenticated and user.has_perm("geo311.view_request_private", request))


def _latest_event_id(request_id: int) -> int:
    last = StatusEvent.objects.filter(request_id=request_id).order_by("-pk").values("pk").first()
    return last["pk"] if last else 0


@non_atomic_requests
@require_GET
async def request_events(request: HttpRequest, public_id: str) -> HttpResponseBase:
    """``GET /api/v1/requests/{id}/events``: the request's new events as Server-Sent Events
    (``id:`` the event id, ``data:`` JSON with kind, status, public note and photo). A client
    that reconnects with ``Last-Event-ID`` (or ``?after=<event id>``) first gets what it
    missed. Public events only; staff who may read the request's private details (session
    sign-in) also get internal ones with their notes.

    Served by the ASGI server. Under WSGI (gunicorn's sync workers, which a stream would hold
    for ever) it redirects to ``GEO311_EVENTS_URL``.
    """
    if not isinstance(request, ASGIRequest):
        if settings.GEO311_EVENTS_URL:
            return HttpResponseRedirect(settings.GEO311_EVENTS_URL + request.get_full_path())
        return JsonResponse(
            {"detail": "event streams are served by the ASGI server (GEO311_EVENTS_URL)"},
            status=501,
        )
    found = await ServiceRequest.objects.filter(public_id=public_id).afirst()
    if found is None:
        raise Http404(f"no request {public_id}")
    user = await request.auser()
    private = await sync_to_async(_may_see_private)(user, found)
    raw_after = request.headers.get("Last-Event-ID") or request.GET.get("after", "")
    after = int(raw_after) if raw_after.isdigit() else None
    response = StreamingHttpResponse(
        _stream(request_id=found.pk, after=after, private=private),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return _cors(request, response)


async def _stream(*, request_id: int, after: int | None, private: bool) -> AsyncIterator[str]:
    hub = event_hub()
    queue = await hub.subscribe(request_id)
    try:
        if after is None:
            after = await sync_to_async(_latest_event_id)(request_id)
            missed: list[dict[str, Any]] = []
        else:
            missed = await sync_to_async(request_events_after)(
                request_id=request_id, after_id=after, private=True
            )
        yield "retry: 3000\n: connected\n\n"
        last = after
        while True:
            for event in missed:
                if event["id"] > last:
                    last = int(event["id"])
                    shown = _for_client(event, private)
                    if shown is not None:
                        yield _sse(shown)
            try:
                item = await asyncio.wait_for(
                    queue.get(), timeout=settings.GEO311_EVENTS_KEEPALIVE_S
                )
            except TimeoutError:
                yield ": keepalive\n\n"
                missed = []
                continue
            if item == RESYNC:
                missed = await sync_to_async(request_events_after)(
                    request_id=request_id, after_id=last, private=True
                )
            else:
                missed = [item]
    finally:
        hub.unsubscribe(request_id, queue)


@csrf_exempt  # the signed token is the authority; mail clients' one-click POSTs carry no CSRF
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page asking to confirm (link scanners that open every URL change nothing).
    POST: stop (also RFC 8058 one-click, ``List-Unsubscribe=One-Click``)."""
    if request.method == "GET":
        return render(request, "notifications/pages/unsubscribe.html", {"token": token})
    try:
        what = services.unsubscribe(token=token)
    except ValidationError as exc:
        return render(
            request,
            "notifications/pages/message.html",
            {"title": "This link does not work", "text": "; ".join(exc.messages)},
            status=400,
        )
    return render(
        request,
        "notifications/pages/message.html",
        {"title": "Unsubscribed", "text": f"You will get no more {what}."},
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def area_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page with the confirm button; POST: start the area alert."""
    if request.method == "GET":
        return render(request, "notifications/pages/area_confirm.html", {"token": token})
    try:
        services.area_subscription_confirm(token=token)
    except ValidationError as exc:
        return render(
            request,
            "notifications/pages/message.html",
            {"title": "This link does not work", "text": "; ".join(exc.messages)},
            status=400,
        )
    return render(
        request,
        "notifications/pages/message.html",
        {"title": "Alert started", "text": "You will be told of new reports in your area."},
    )


@non_atomic_requests
@require_GET
def tracking_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """A request's public status and history, updated live from its event stream; its public
    point on a map (a sensitive category's at its cell centre), its photos, and follow /
    unfollow (``geo311.web``: this browser keeps the follower token of its own follows)."""
    from geo311.photos.models import Photo
    from geo311.privacy import public_point
    from geo311.selectors import follower_count
    from geo311.web.views import followed_by_this_browser

    found = (
        ServiceRequest.objects.select_related("category", "status", "duplicate_of")
        .filter(public_id=public_id)
        .first()
    )
    if found is None:
        raise Http404(f"no request {public_id}")
    events = list(
        StatusEvent.objects.select_related("status")
        .filter(request=found, public=True)
        .order_by("pk")
    )
    # Public photos: the report's own (no event) and each public update's, under it.
    report_photos, by_event = [], defaultdict(list)
    for photo in Photo.objects.filter(request=found, public=True).order_by("created_at", "pk"):
        if photo.event_id is None:
            report_photos.append(photo.urls())
        else:
            by_event[photo.event_id].append(photo.urls())
    for event in events:
        event.public_photos = by_event.get(event.pk, [])  # type: ignore[attr-defined]
    point = public_point(found.location, found.category.sensitive)
    can_unfollow = followed_by_this_browser(request, found.public_id)
    return render(
        request,
        "notifications/pages/tracking.html",
        {
            "req": found,
            "events": events,
            "last_event_id": events[-1].pk if events else 0,
            "events_url": f"{settings.GEO311_EVENTS_URL}/api/v1/requests/{found.public_id}/events",
            "point": [round(point.x, 6), round(point.y, 6)],
            "point_public_cell": found.category.sensitive,
            "followers": follower_count(request=found),
            "following": can_unfollow or request.GET.get("following") == "1",
            "can_unfollow": can_unfollow,
            "photos": report_photos,
        },
    )
