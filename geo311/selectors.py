"""Reads for service categories, requests and their history.

Points are WGS84 (EPSG:4326); distances are metres, measured on the geography (spheroid), never
in degrees. List selectors return querysets with their related rows joined or prefetched, so
serialising a page costs a fixed number of queries whatever its length.
"""

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from django.contrib.gis.db.models import PointField
from django.contrib.gis.geos import GEOSGeometry, Point, Polygon
from django.contrib.gis.measure import D
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import (
    Count,
    Exists,
    Func,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from boundaries.models import Boundary, BoundaryPart, LayerKind
from boundaries.selectors import active_layer_ids, boundaries_containing

from .models import (
    Department,
    Follower,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceRequest,
    StatusEvent,
    Team,
)
from .privacy import sensitive_grid_m
from .roles import visible_requests
from .routing import Area, RoutingError, route_among

# Metres per degree of latitude, rounded down, so the box built from it is never too small.
_METRES_PER_DEGREE = 110_000.0
# EPSG:3857 metres per degree of longitude (and at most that per degree of latitude): a cell
# of the sensitive grid spans at most this many degrees.
_METRES_PER_WEB_MERCATOR_DEGREE = 111_319.0


def category_list() -> QuerySet[ServiceCategory]:
    """Active categories in the city's order, each with ``has_questions`` (Open311 metadata)."""
    return ServiceCategory.objects.filter(active=True).annotate(
        has_questions=Exists(ServiceAttribute.objects.filter(category=OuterRef("pk")))
    )


def category_definition_get(*, service_code: str) -> ServiceCategory:
    """An active category with its questions and their choices (three queries).

    Raises ServiceCategory.DoesNotExist for an unknown or retired code.
    """
    return ServiceCategory.objects.prefetch_related("attributes__values").get(
        service_code=service_code, active=True
    )


def categories_known(*, service_codes: list[str]) -> set[str]:
    """Which of ``service_codes`` exist (active or not: old requests keep their category)."""
    return set(
        ServiceCategory.objects.filter(service_code__in=service_codes).values_list(
            "service_code", flat=True
        )
    )


def _public_events() -> Prefetch:
    events = StatusEvent.objects.filter(public=True).select_related("status")
    return Prefetch("events", queryset=events.order_by("created_at", "pk"), to_attr="public_events")


def request_list(
    *,
    public_ids: list[str] | None = None,
    service_codes: list[str] | None = None,
    open311_statuses: list[str] | None = None,
    requested_from: dt.datetime | None = None,
    requested_to: dt.datetime | None = None,
    updated_from: dt.datetime | None = None,
    updated_to: dt.datetime | None = None,
    near: tuple[Point, float] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    extended: bool = False,
) -> QuerySet[ServiceRequest]:
    """Requests, newest first, with what their public form needs: category, department and
    status joined, public status events (``public_events``) prefetched; with ``extended`` also
    the team, the category's questions and the merge links and follower count
    (``with_duplicate_links``).

    ``public_ids`` overrides every other filter (as Open311 says). Datetimes are inclusive
    bounds. ``near`` is (WGS84 point, radius in metres); ``bbox`` is (west, south, east, north)
    in degrees.
    """
    requests = ServiceRequest.objects.select_related("category", "department", "status")
    requests = requests.prefetch_related(_public_events())
    if extended:
        requests = with_duplicate_links(
            requests.select_related("team").prefetch_related("category__attributes")
        )
    if public_ids is not None:
        return requests.filter(public_id__in=public_ids)
    if service_codes:
        requests = requests.filter(category__service_code__in=service_codes)
    if open311_statuses:
        requests = requests.filter(status__open311_status__in=open311_statuses)
    if requested_from:
        requests = requests.filter(requested_at__gte=requested_from)
    if requested_to:
        requests = requests.filter(requested_at__lte=requested_to)
    if updated_from:
        requests = requests.filter(updated_at__gte=updated_from)
    if updated_to:
        requests = requests.filter(updated_at__lte=updated_to)
    # Place filters test the public location (a sensitive request's cell centre, as listed):
    # tested on the exact point, a small enough box would find it. The exact point, widened
    # by a cell, narrows first on its index.
    if bbox:
        west, south, east, north = bbox
        cell = sensitive_grid_m() / _METRES_PER_WEB_MERCATOR_DEGREE
        wide = (west - cell, south - cell, east + cell, north + cell)
        requests = (
            requests.filter(location__intersects=Polygon.from_bbox(wide))
            .alias(public_location=_public_location())
            .filter(public_location__intersects=Polygon.from_bbox(bbox))
        )
    if near:
        requests = _within_metres(
            requests, point=near[0], metres=near[1] + sensitive_grid_m()
        ).alias(public_geography=Cast(_public_location(), PointField(geography=True, srid=4326)))
        requests = requests.filter(public_geography__dwithin=(near[0], D(m=near[1])))
    return requests


def _public_location() -> Func:
    """The request's location as the public sees it (``geo311_public_location``, migration
    0009), for filters that must not tell more than the list shows."""
    return Func(
        "location",
        "category__sensitive",
        Value(sensitive_grid_m()),
        function="geo311_public_location",
        output_field=PointField(srid=4326),
    )


def _within_metres(
    requests: QuerySet[ServiceRequest], *, point: Point, metres: float
) -> QuerySet[ServiceRequest]:
    """Requests within ``metres`` of ``point``, measured on the spheroid (geography).

    The distance test casts to geography, which the geometry GiST index cannot serve; a box that
    surely contains the circle (degrees widened for latitude, with margin) lets the index pick
    the candidates first. The box only narrows: the geography distance decides.
    """
    margin = metres / _METRES_PER_DEGREE * 1.1 + 1e-6
    cos_lat = max(math.cos(math.radians(min(abs(point.y) + margin, 90.0))), 1e-6)
    box = (
        max(point.x - margin / cos_lat, -180.0),
        max(point.y - margin, -90.0),
        min(point.x + margin / cos_lat, 180.0),
        min(point.y + margin, 90.0),
    )
    return (
        requests.filter(location__intersects=Polygon.from_bbox(box))
        .annotate(location_geography=Cast("location", PointField(geography=True, srid=4326)))
        .filter(location_geography__dwithin=(point, D(m=metres)))
    )


def request_get(*, public_id: str, extended: bool = False) -> ServiceRequest:
    """One request in its public form (see ``request_list``). Raises DoesNotExist."""
    return request_list(public_ids=[public_id], extended=extended).get()


def request_by_token_get(*, token: str) -> ServiceRequest:
    """The request a POST answered with ``token``. Raises ServiceRequest.DoesNotExist."""
    return ServiceRequest.objects.only("public_id", "token").get(token=token)


def request_updates(
    *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> QuerySet[StatusEvent]:
    """Public status events (the updates feed), oldest first, with their request's public id
    and their status joined; ``start``/``end`` bound the event time, inclusive."""
    events = StatusEvent.objects.filter(public=True).select_related("status", "request")
    events = events.only(
        "note",
        "photo_url",
        "created_at",
        "status__code",
        "status__name",
        "status__open311_status",
        "request__public_id",
    )
    if start:
        events = events.filter(created_at__gte=start)
    if end:
        events = events.filter(created_at__lte=end)
    return events.order_by("created_at", "pk")


@dataclass(frozen=True)
class ServiceCoverage:
    """Who would serve one category at a point, or why nobody would."""

    category: ServiceCategory
    department: Department | None
    team: Team | None
    rule: RoutingRule | None
    reason: str = ""

    @property
    def served(self) -> bool:
        return self.department is not None


@dataclass(frozen=True)
class Coverage:
    served: bool
    boundaries: list[Boundary]
    services: list[ServiceCoverage]


def coverage_at(*, point: Point) -> Coverage:
    """Whether a WGS84 point is inside the jurisdiction, the areas it falls in, and for every
    active category the department (and team) that would serve a request there.

    Five queries whatever the number of categories and rules: the boundaries, the jurisdiction
    layers, the categories with their required layers, and the rules, then
    ``routing.route_among`` decides each category in Python exactly as filing a request would.
    """
    matched = list(boundaries_containing(point=point))
    outlines = active_layer_ids(kind=LayerKind.JURISDICTION)
    layers = {b.version.layer_id for b in matched}
    served = not outlines or bool(outlines & layers)
    categories = (
        ServiceCategory.objects.filter(active=True)
        .select_related("default_department")
        .prefetch_related("required_layers")
    )
    rules = list(RoutingRule.objects.select_related("department", "team", "layer", "category"))
    areas = [Area.of(b) for b in matched]
    services = []
    for category in categories:
        try:
            routing = route_among(
                category=category, matched=areas, outline_layer_ids=outlines, rules=rules
            )
        except RoutingError as exc:
            services.append(ServiceCoverage(category, None, None, None, str(exc)))
            continue
        services.append(ServiceCoverage(category, routing.department, routing.team, routing.rule))
    return Coverage(served=served, boundaries=matched, services=services)


# --- followers, merges -------------------------------------------------------------------------


def _active_followers() -> QuerySet[Follower]:
    return Follower.objects.filter(unsubscribed_at__isnull=True)


def follower_count(*, request: ServiceRequest) -> int:
    """How many people follow ``request`` (public; who they are is not)."""
    return _active_followers().filter(request=request).count()


def with_duplicate_links(requests: QuerySet[ServiceRequest]) -> QuerySet[ServiceRequest]:
    """``requests`` with their merge links and follower count in the same query:
    ``parent_public_id`` (the original it was merged into), ``duplicate_public_ids`` (requests
    merged into it) and ``follower_count``."""
    merged = (
        ServiceRequest.objects.filter(duplicate_of=OuterRef("pk"))
        .order_by()
        .values("duplicate_of")
        .annotate(ids=ArrayAgg("public_id", order_by="public_id"))
        .values("ids")
    )
    followers = (
        _active_followers()
        .filter(request=OuterRef("pk"))
        .order_by()
        .values("request")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return requests.annotate(
        parent_public_id=Subquery(
            ServiceRequest.objects.filter(pk=OuterRef("duplicate_of_id")).values("public_id")[:1]
        ),
        duplicate_public_ids=Coalesce(Subquery(merged), Value([])),
        follower_count=Coalesce(Subquery(followers), 0),
    )


# --- staff -------------------------------------------------------------------------------------


def boundary_active_get(*, layer: str, code: str) -> Boundary:
    """The boundary ``code`` of the active version of layer ``layer`` (slug). Raises
    Boundary.DoesNotExist."""
    return Boundary.objects.get(version__layer__slug=layer, version__status="active", code=code)


def staff_queue(
    *,
    user: Any,
    statuses: list[str] | None = None,
    service_codes: list[str] | None = None,
    department: str = "",
    team: str = "",
    assignee: str = "",
    boundary: Boundary | None = None,
    min_age_days: float | None = None,
    max_age_days: float | None = None,
    open_only: bool = False,
    overdue: bool | None = None,
) -> QuerySet[ServiceRequest]:
    """The requests ``user`` works on (``geo311.roles.visible_requests``: a department's staff
    their department's, crew their assigned work, call-takers what they filed, managers all),
    newest first, with what a queue row shows joined.

    ``statuses`` are status codes; ``boundary`` keeps the requests inside it (the polygon now,
    not the areas frozen at routing time); ages are days since requested; ``overdue`` true keeps
    the open ones past their expected time, false the others.
    """
    now = timezone.now()
    # The linked requests come joined (count() drops the joins; annotations would keep them).
    linked = [
        f"{link}__{name}"
        for link in ("possible_duplicate_of", "duplicate_of")
        for name in ("attributes", "routing", "duplicate_reasons", "description")
    ]
    requests = (
        ServiceRequest.objects.filter(visible_requests(user))
        .select_related(
            "category",
            "status",
            "department",
            "team",
            "assignee",
            "possible_duplicate_of",
            "duplicate_of",
        )
        .defer("attributes", "routing", "duplicate_reasons", "description", *linked)
    )
    if statuses:
        requests = requests.filter(status__code__in=statuses)
    if open_only:
        requests = requests.filter(status__open311_status="open")
    if service_codes:
        requests = requests.filter(category__service_code__in=service_codes)
    if department:
        requests = requests.filter(department__slug=department)
    if team:
        requests = requests.filter(team__slug=team)
    if assignee:
        requests = requests.filter(assignee__username=assignee)
    if boundary is not None:
        # The boundary's subdivided parts (GiST-indexed, small) rather than its whole polygon.
        requests = requests.filter(
            Exists(
                BoundaryPart.objects.filter(
                    boundary_id=boundary.pk, geom__intersects=OuterRef("location")
                )
            )
        )
    if min_age_days is not None:
        requests = requests.filter(requested_at__lte=now - dt.timedelta(days=min_age_days))
    if max_age_days is not None:
        requests = requests.filter(requested_at__gte=now - dt.timedelta(days=max_age_days))
    late = Q(status__open311_status="open", expected_at__lt=now)
    if overdue is True:
        requests = requests.filter(late)
    elif overdue is False:
        requests = requests.exclude(late)
    return requests


def request_for_staff_get(*, public_id: str) -> ServiceRequest:
    """One request with everything staff see: category, status, department, team, assignee,
    filer and possible duplicate joined, every event (internal ones too, ``all_events``) with its
    statuses and actor, merge links and follower count. Raises ServiceRequest.DoesNotExist."""
    events = StatusEvent.objects.select_related("status", "previous_status", "actor_user")
    return (
        with_duplicate_links(ServiceRequest.objects.all())
        .select_related(
            "category",
            "status",
            "department",
            "team",
            "assignee",
            "filed_by",
            "possible_duplicate_of",
        )
        .prefetch_related(
            Prefetch("events", queryset=events.order_by("created_at", "pk"), to_attr="all_events")
        )
        .get(public_id=public_id)
    )


# --- audit trail -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    """One change of a tracked row: when, what (insert, update, delete), who (the user id and
    name, or the api key, from the pghistory context) and the fields it changed."""

    at: dt.datetime
    action: str
    user_id: int | None
    actor: str
    url: str
    fields: list[FieldChange] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """A snapshot value as JSON can carry it."""
    if isinstance(value, GEOSGeometry):
        return value.wkt
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def history_of(*, obj: Model) -> list[Change]:
    """The audit trail of a tracked object (see ``geo311.models.audited``), oldest first.

    Each update or delete event holds the row as it was before; the row after is the next
    event's (or the live row); an insert event holds the row as inserted.
    """
    events_model = type(obj).history.rel.related_model  # type: ignore[attr-defined]
    tracked = [
        f.attname
        for f in events_model._meta.concrete_fields
        if not f.name.startswith("pgh_") and f.attname in {g.attname for g in obj._meta.fields}
    ]
    snapshots = list(
        events_model.objects.filter(pgh_obj_id=obj.pk)
        .order_by("pgh_id")
        .values(*tracked, "pgh_label", "pgh_created_at", "pgh_context__metadata")
    )
    live = type(obj)._default_manager.filter(pk=obj.pk).values(*tracked).first()
    changes = []
    for n, event in enumerate(snapshots):
        if event["pgh_label"] == "insert":
            before, after = None, event
        else:
            before = event
            after = snapshots[n + 1] if n + 1 < len(snapshots) else live
            if event["pgh_label"] == "delete":
                after = None
        names = [
            name
            for name in tracked
            if (before or {}).get(name) != (after or {}).get(name)
            or before is None
            or after is None
        ]
        context = event["pgh_context__metadata"] or {}
        changes.append(
            Change(
                at=event["pgh_created_at"],
                action=event["pgh_label"],
                user_id=context.get("user"),
                actor=context.get("actor") or "",
                url=context.get("url") or "",
                fields=[
                    FieldChange(
                        name,
                        None if before is None else _plain(before[name]),
                        None if after is None else _plain(after[name]),
                    )
                    for name in names
                ],
            )
        )
    return changes
