"""The residents' pages: the report page (``/``, also the call-taker's ``/staff/call/``), the
address search it asks as the resident types, follow and unfollow from the tracking page, and
the public map.

The report page works as a plain form POST; its script adds the map pin, the device location,
the address picker, coverage and nearby reports. Writes go through ``geo311.services``.
"""

from contextlib import suppress
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.transaction import non_atomic_requests
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from boundaries.models import Layer, LayerKind, VersionStatus
from geo311 import services
from geo311.addresses import address_search
from geo311.cache import city_config
from geo311.models import Channel, Follower, FollowerUpdates, ServiceRequest, Status
from geo311.notifications.models import Notify
from geo311.notifications.services import reporter_preference_set
from geo311.photos.models import Photo
from geo311.photos.services import photo_ingest

from .forms import ReportForm

# The follower tokens of this browser's follows (public id → token), so it may unfollow.
FOLLOWS_SESSION_KEY = "geo311_follows"
ADDRESS_SEARCH_LIMIT = 8


def _boundary_layers() -> list[Layer]:
    return list(
        Layer.objects.filter(versions__status=VersionStatus.ACTIVE)
        .exclude(kind=LayerKind.JURISDICTION)
        .order_by("slug")
        .distinct()
    )


def _page_urls() -> dict[str, str]:
    """Where the page scripts ask: the same endpoints any client uses."""
    return {
        "coverage": reverse("open311:coverage", kwargs={"fmt": "json"}),
        "nearby": reverse("requests:nearby"),
        "follow": reverse("requests:follow", kwargs={"public_id": "ID"}),
        "tracking": reverse("notifications:tracking", kwargs={"public_id": "ID"}),
        "addresses": reverse("address-search"),
        "boundaries": "/api/v1/boundaries/layers/SLUG/boundaries.geojson",
        "tiles": "/tiles/SLUG/{z}/{x}/{y}.mvt",
    }


def _report_page(request: HttpRequest, *, staff: bool) -> HttpResponse:
    config = city_config()
    if request.method == "POST":
        form = ReportForm(request.POST, request.FILES, config=config, staff=staff)
        if form.is_valid():
            created = _file(form, request=request, staff=staff)
            if created is not None:
                messages.success(
                    request,
                    _("Thank you: your report is %(id)s.") % {"id": created.public_id}
                    if not staff
                    else _("Filed for the caller as %(id)s.") % {"id": created.public_id},
                )
                return redirect("notifications:tracking", public_id=created.public_id)
        form.mark_invalid()
        status = 400
    else:
        form = ReportForm(config=config, staff=staff)
        status = 200
    return render(
        request,
        "web/report.html",
        {
            "form": form,
            "staff": staff,
            "required_questions": form.required_questions(),
            "urls": _page_urls(),
            "layer": settings.GEO311_REPORT_MAP_LAYER,
            "centre": settings.GEO311_MAP_CENTRE,
        },
        status=status,
    )


def _file(form: ReportForm, *, request: HttpRequest, staff: bool) -> ServiceRequest | None:
    """The request, the reporter's preference and the photos in one transaction; None (the
    errors on the form) when the service refuses it."""
    data = form.cleaned_data
    try:
        with transaction.atomic():
            created = services.request_create(
                category=data["category"],
                location=form.location(),
                description=data.get("description", ""),
                answers=form.answers(),
                address=data.get("address", ""),
                address_id=data.get("address_id", ""),
                zipcode=data.get("zipcode", ""),
                channel=Channel.PHONE if staff else Channel.WEB,
                reporter=form.reporter(),
                filed_by=request.user if staff else None,  # type: ignore[arg-type]
            )
            if data["notify"] != Notify.NONE or created.reporter_email or created.reporter_phone:
                reporter_preference_set(request=created, notify=data["notify"])
            _photos_attach(data.get("photos") or [], request=created)
    except ValidationError as exc:
        form.add_service_errors(exc)
        return None
    return created


def _photos_attach(uploads: list[Any], *, request: ServiceRequest) -> None:
    """The report's photos, cleaned and stored by ``geo311.photos``. When one is refused the
    transaction rolls back the rows; the copies already written go with them."""
    kept: list[Photo] = []
    try:
        for upload in uploads:
            kept.append(photo_ingest(upload, request=request))
    except ValidationError:
        for photo in kept:
            default_storage.delete(photo.large)
            default_storage.delete(photo.thumbnail)
        raise


def report(request: HttpRequest) -> HttpResponse:
    """``/``: the resident's report page."""
    return _report_page(request, staff=False)


@login_required
def staff_call(request: HttpRequest) -> HttpResponse:
    """``/staff/call/``: the call-taker files for a caller (channel phone), by address or pin."""
    if not request.user.has_perm("geo311.file_for_caller"):
        raise PermissionDenied("filing for callers needs the call-taker role")
    return _report_page(request, staff=True)


@non_atomic_requests
@require_GET
def addresses(request: HttpRequest) -> JsonResponse:
    """``GET /api/v1/addresses/search?q=``: address points matching what was typed so far
    (prefix, then trigram similarity), with their WGS84 point; at most 8."""
    text = request.GET.get("q", "")
    if len(text) > 300:
        return JsonResponse({"q": ["at most 300 characters"]}, status=400)
    found = address_search(text=text, limit=ADDRESS_SEARCH_LIMIT)
    return JsonResponse(
        [
            {
                "address": p.address,
                "address_id": p.address_id,
                "zipcode": p.zipcode,
                "lat": p.location.y,
                "lon": p.location.x,
            }
            for p in found
        ],
        safe=False,
    )


def _found(public_id: str) -> ServiceRequest:
    found = ServiceRequest.objects.select_related("duplicate_of").filter(public_id=public_id)
    request = found.first()
    if request is None:
        raise Http404(f"no request {public_id}")
    return request


@require_POST
def follow(request: HttpRequest, public_id: str) -> HttpResponse:
    """The tracking page's follow form (works without JavaScript): follow by email or SMS;
    this browser keeps the follower's token to unfollow."""
    found = _found(public_id)
    updates = request.POST.get("updates") or FollowerUpdates.ALL
    try:
        follower = services.request_follow(
            request=found,
            email=request.POST.get("email", ""),
            phone=request.POST.get("phone", ""),
            updates=updates,
        )
    except ValidationError as exc:
        for field, problems in exc.message_dict.items():
            messages.error(request, f"{field}: {' '.join(problems)}")
        return redirect(reverse("notifications:tracking", args=[public_id]) + "#follow")
    follows = request.session.get(FOLLOWS_SESSION_KEY, {})
    followed = follower.request.public_id
    follows[followed] = follower.token
    request.session[FOLLOWS_SESSION_KEY] = follows
    messages.success(request, _("You follow this report: we will tell you of its progress."))
    return redirect(reverse("notifications:tracking", args=[followed]) + "#follow")


@require_POST
def unfollow(request: HttpRequest, public_id: str) -> HttpResponse:
    """Stop following, with the token this browser kept when it followed."""
    follows = request.session.get(FOLLOWS_SESSION_KEY, {})
    token = follows.pop(public_id, None)
    if token:
        with suppress(Follower.DoesNotExist):  # already gone: what the resident wanted
            services.follower_unsubscribe(token=token)
        request.session[FOLLOWS_SESSION_KEY] = follows
        messages.success(request, _("You no longer follow this report."))
    return redirect(reverse("notifications:tracking", args=[public_id]) + "#follow")


def followed_by_this_browser(request: HttpRequest, public_id: str) -> bool:
    return public_id in request.session.get(FOLLOWS_SESSION_KEY, {})


@non_atomic_requests
@require_GET
def public_map(request: HttpRequest) -> HttpResponse:
    """``/map/``: every public request and the boundaries, from the vector tiles."""
    config = city_config()
    categories = sorted(
        (c for c in config.categories.values() if c.active),
        key=lambda c: (c.group or "~", c.order, c.name),
    )
    context: dict[str, Any] = {
        "categories": categories,
        "statuses": Status.objects.order_by("order", "code"),
        "layers": _boundary_layers(),
        "urls": _page_urls(),
        "centre": settings.GEO311_MAP_CENTRE,
    }
    return render(request, "web/map.html", context)
