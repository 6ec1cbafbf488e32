"""Staff pages: the department queue (list, map, filters, bulk assign and transitions, live
counts) and the crews' field view (my open work by distance, one-tap on site / completed with a
photo and a note).

Signed-in staff only (``geo311.use_staff_api``, as the staff API); what each user sees is the
staff API's queue (``geo311.selectors.staff_queue``) and every change goes through
``geo311.services`` after the same object permission the API asks.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.gis.geos import Point
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db import transaction
from django.db.transaction import non_atomic_requests
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from geo311 import selectors, services
from geo311.models import Department, ServiceRequest, Status
from geo311.notifications.views import _cors
from geo311.photos.models import Photo
from geo311.photos.services import photo_absolute_url, photo_ingest, photos_attach_to_event
from geo311.roles import is_crew, is_manager, staff_profile
from geo311.services import Actor

from . import selectors as page_selectors
from .forms import BulkActionForm, FieldUpdateForm, QueueFilterForm
from .live import EVERY_DEPARTMENT, queue_hub

PAGE_SIZE = 50
MAP_LIMIT = 2000


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sign-in (a login redirect), then the staff API's own permission (403)."""

    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("geo311.use_staff_api"):
            raise PermissionDenied(_("These pages are for city staff."))
        return view(request, *args, **kwargs)

    wrapped.__doc__ = view.__doc__
    wrapped.__name__ = view.__name__
    return wrapped


def _departments(user: Any) -> list[Department]:
    """The departments whose teams and crew ``user`` may assign to."""
    if is_manager(user):
        return list(Department.objects.order_by("name"))
    profile = staff_profile(user)
    if profile is None or profile.department is None:
        return []
    return [profile.department]


@require_GET
@staff_required
def home(request: HttpRequest) -> HttpResponse:
    """Crews start in the field view, everyone else in the queue."""
    if is_crew(request.user) and not is_manager(request.user):
        return redirect("staffweb:field")
    return redirect("staffweb:queue")


# --- queue --------------------------------------------------------------------------------------


def _filtered_queue(request: HttpRequest) -> tuple[QueueFilterForm, Any]:
    """The filter form and the user's queue filtered by it (open requests when unfiltered;
    nothing while the filters are invalid), newest first."""
    form = QueueFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return form, ServiceRequest.objects.none()
    options = form.selector_kwargs() if form.is_bound else {"open_only": True}
    queue = selectors.staff_queue(user=request.user, **options)
    if form.is_bound and form.cleaned_data.get("unassigned"):
        queue = queue.filter(assignee__isnull=True)
    return form, queue.order_by("-requested_at", "-pk")


@require_GET
@staff_required
def queue(request: HttpRequest) -> HttpResponse:
    """The department queue: filters, the list (paged) with checkboxes for bulk actions, the
    map of the same requests, and the live counts."""
    form, requests = _filtered_queue(request)
    page = Paginator(requests, PAGE_SIZE).get_page(request.GET.get("page"))
    filters = request.GET.copy()
    filters.pop("page", None)
    now = timezone.now()
    rows = [
        {
            "req": r,
            "overdue": bool(
                r.status.open311_status == "open" and r.expected_at and r.expected_at < now
            ),
        }
        for r in page.object_list
    ]
    return render(
        request,
        "staffweb/queue.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "filters": filters.urlencode(),
            "bulk": BulkActionForm(departments=_departments(request.user)),
            "counts": page_selectors.queue_counts(user=request.user),
            "map_url": reverse("staffweb:queue-map")
            + ("?" + filters.urlencode() if filters else ""),
        },
    )


@require_GET
@staff_required
def queue_map(request: HttpRequest) -> JsonResponse:
    """The filtered queue as GeoJSON for the page's map (exact points: staff only)."""
    form, requests = _filtered_queue(request)
    if form.is_bound and not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    return JsonResponse(page_selectors.queue_geojson(requests=requests, limit=MAP_LIMIT))


@require_GET
@staff_required
def queue_counts(request: HttpRequest) -> JsonResponse:
    """Open, overdue and unassigned requests per status (what the live stream sends)."""
    return JsonResponse(page_selectors.queue_counts(user=request.user))


@require_POST
@staff_required
def queue_bulk(request: HttpRequest) -> HttpResponse:
    """Assign or change the status of the selected requests, each on its own (a request the
    user may not change, or that the city's transitions refuse, is reported and the others
    still change)."""
    back = reverse("staffweb:queue") + (
        "?" + request.POST["filters"] if request.POST.get("filters") else ""
    )
    form = BulkActionForm(request.POST, departments=_departments(request.user))
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else str(error))
        return HttpResponseRedirect(back)
    data = form.cleaned_data
    actor = Actor(user=request.user)  # type: ignore[arg-type]
    done: list[str] = []
    for public_id in data["selected"]:
        found = (
            ServiceRequest.objects.select_related("status", "department")
            .filter(public_id=public_id)
            .first()
        )
        if found is None:
            messages.error(request, _("%(id)s: no such request") % {"id": public_id})
            continue
        try:
            with transaction.atomic():  # one savepoint each: a refusal keeps the others
                _bulk_one(request.user, found, data, actor)
        except PermissionDenied:
            messages.error(request, _("%(id)s: you may not change it") % {"id": public_id})
        except ValidationError as exc:
            messages.error(request, f"{public_id}: {' '.join(exc.messages)}")
        else:
            done.append(public_id)
    if done:
        text = _("Assigned: %(ids)s") if data["action"] == form.ASSIGN else _("Changed: %(ids)s")
        messages.success(request, text % {"ids": ", ".join(done)})
    return HttpResponseRedirect(back)


def _bulk_one(user: Any, found: ServiceRequest, data: dict[str, Any], actor: Actor) -> None:
    notes = {"public_note": data["public_note"], "internal_note": data["internal_note"]}
    if data["action"] == BulkActionForm.ASSIGN:
        if not user.has_perm("geo311.assign_request", found):
            raise PermissionDenied
        team, assignee = services.assignment_targets(
            request=found, team=data["team"], assignee=data["assignee"]
        )
        services.request_assign(request=found, actor=actor, team=team, assignee=assignee, **notes)
    else:
        if not user.has_perm("geo311.change_request_status", found):
            raise PermissionDenied
        services.request_transition(
            request=found, actor=actor, status=Status.objects.get(code=data["status"]), **notes
        )


@non_atomic_requests
@require_GET
async def queue_events(request: HttpRequest) -> HttpResponseBase:
    """``GET /staff/queue/events``: the live counts as Server-Sent Events (``event: counts``,
    JSON as ``queue/counts.json``), sent on connect and again whenever a request of the user's
    department(s) changes or arrives. Served by the ASGI server (as the request event
    streams); under WSGI it redirects to ``GEO311_EVENTS_URL``."""
    if not isinstance(request, ASGIRequest):
        if settings.GEO311_EVENTS_URL:
            return HttpResponseRedirect(settings.GEO311_EVENTS_URL + request.get_full_path())
        return JsonResponse(
            {"detail": "event streams are served by the ASGI server (GEO311_EVENTS_URL)"},
            status=501,
        )
    user = await request.auser()
    allowed = user.is_authenticated and await sync_to_async(user.has_perm)("geo311.use_staff_api")
    if not allowed:
        return _cors(request, JsonResponse({"detail": "staff sign-in required"}, status=403))
    key = await sync_to_async(_stream_key)(user)
    response = StreamingHttpResponse(_counts_stream(user, key), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return _cors(request, response)


def _stream_key(user: Any) -> int:
    profile = staff_profile(user)
    if is_manager(user) or profile is None or not profile.department_id:
        return EVERY_DEPARTMENT
    return int(profile.department_id)


def _counts_event(counts: dict[str, Any]) -> str:
    return f"event: counts\ndata: {json.dumps(counts, separators=(',', ':'))}\n\n"


async def _counts_stream(user: Any, key: int) -> AsyncIterator[str]:
    hub = queue_hub()
    wake = await hub.subscribe(key)
    count = sync_to_async(lambda: page_selectors.queue_counts(user=user))
    try:
        last = await count()
        yield "retry: 3000\n" + _counts_event(last)
        while True:
            try:
                item = await asyncio.wait_for(
                    wake.get(), timeout=settings.GEO311_EVENTS_KEEPALIVE_S
                )
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            del item  # CHANGED or RESYNC: count again either way
            counts = await count()
            if counts != last:
                last = counts
                yield _counts_event(counts)
    finally:
        hub.unsubscribe(key, wake)


# --- field view ---------------------------------------------------------------------------------


class BadLocation(ValueError):
    """``lat``/``lon`` given but unusable; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _near(request: HttpRequest) -> Point | None:
    """The device location from ``lat`` and ``lon`` (WGS84 degrees), None when neither is
    given; BadLocation names the parameter that is missing, not a number or out of range."""
    if not request.GET.get("lat") and not request.GET.get("lon"):
        return None
    values = {}
    for name, limit in (("lat", 90), ("lon", 180)):
        try:
            values[name] = float(request.GET.get(name, ""))
        except ValueError:
            raise BadLocation(name, _("give lat and lon in degrees")) from None
        if not -limit <= values[name] <= limit:
            raise BadLocation(name, _("must be between -%(n)s and %(n)s") % {"n": limit})
    return Point(values["lon"], values["lat"], srid=4326)


def _field_rows(request: HttpRequest, near: Point | None) -> list[dict[str, Any]]:
    rules = page_selectors.transition_rules()
    rows = []
    for req in page_selectors.field_work(user=request.user, near=near)[:200]:
        allowed = rules.get(req.status_id, {})
        rows.append(
            {
                "req": req,
                "distance_m": getattr(req, "distance_m", None),
                "on_site": allowed.get(settings.GEO311_FIELD_ON_SITE_STATUS),
                "done": allowed.get(settings.GEO311_FIELD_DONE_STATUS),
            }
        )
    return rows


@require_GET
@staff_required
def field(request: HttpRequest) -> HttpResponse:
    """The crew's phone page: open work on a map and in a list, nearest first once the
    device location is known (``lat``, ``lon``), with one-tap on site and completed."""
    try:
        near = _near(request)
    except BadLocation as exc:
        messages.error(request, f"{exc.field}: {exc}")
        near = None
    return render(
        request,
        "staffweb/field.html",
        {
            "rows": _field_rows(request, near),
            "near": near,
            "on_site_status": settings.GEO311_FIELD_ON_SITE_STATUS,
            "done_status": settings.GEO311_FIELD_DONE_STATUS,
        },
    )


@require_GET
@staff_required
def field_work(request: HttpRequest) -> JsonResponse:
    """The field list as JSON (the page re-sorts itself with it when the device moves)."""
    try:
        near = _near(request)
    except BadLocation as exc:
        return JsonResponse({exc.field: [str(exc)]}, status=400)
    return JsonResponse(
        {
            "requests": [
                {
                    "service_request_id": row["req"].public_id,
                    "service_name": row["req"].category.name,
                    "status": row["req"].status.code,
                    "address": row["req"].address,
                    "lat": row["req"].location.y,
                    "long": row["req"].location.x,
                    "distance_m": (
                        round(row["distance_m"].m, 1) if row["distance_m"] is not None else None
                    ),
                }
                for row in _field_rows(request, near)
            ]
        }
    )


@require_POST
@staff_required
def field_update(request: HttpRequest, public_id: str) -> HttpResponse:
    """On site or completed, from the field: the transition the city allows (with its note
    rule), with the photo (cleaned by ``photo_ingest``) on the event; nothing is kept when
    either is refused."""
    found = get_object_or_404(
        ServiceRequest.objects.select_related("status", "department"), public_id=public_id
    )
    if not request.user.has_perm("geo311.change_request_status", found):
        raise PermissionDenied(_("This request is not yours to change."))
    form = FieldUpdateForm(request.POST, request.FILES)
    back = reverse("staffweb:field") + (
        "?" + urlencode({"lat": request.POST["lat"], "lon": request.POST["lon"]})
        if request.POST.get("lat") and request.POST.get("lon")
        else ""
    )
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"{public_id}: {error}")
        return HttpResponseRedirect(back)
    data = form.cleaned_data
    status = Status.objects.filter(code=data["status"]).first()
    if status is None:
        messages.error(
            request, _("%(id)s: no status '%(code)s'") % {"id": public_id, "code": data["status"]}
        )
        return HttpResponseRedirect(back)
    photo: Photo | None = None
    try:
        with transaction.atomic():
            # The photo first: the event carries its URL (for the resident's message).
            if data["photo"]:
                photo = photo_ingest(data["photo"], request=found)
            event = services.request_transition(
                request=found,
                status=status,
                actor=Actor(user=request.user),  # type: ignore[arg-type]
                public_note=data["public_note"],
                photo_url=photo_absolute_url(photo) if photo is not None else "",
            )
            if photo is not None:
                photos_attach_to_event([photo], event)
    except ValidationError as exc:
        if photo is not None:  # its row is rolled back; its stored copies go too
            default_storage.delete(photo.large)
            default_storage.delete(photo.thumbnail)
        messages.error(request, f"{public_id}: {' '.join(exc.messages)}")
        return HttpResponseRedirect(back)
    messages.success(request, _("%(id)s: %(status)s") % {"id": public_id, "status": status.name})
    return HttpResponseRedirect(back)
