"""Reads for service categories, requests and their history.

Points are WGS84 (EPSG:4326); distances are metres, measured on the geography (spheroid), never
in degrees. List selectors return querysets with their related rows joined or prefetched, so
serialising a page costs a fixed number of queries whatever its length.
"""

import datetime as dt
import math
from dataclasses import dataclass

from django.contrib.gis.db.models import PointField
from django.contrib.gis.geos import Point, Polygon
from django.contrib.gis.measure import D
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.db.models.functions import Cast

from boundaries.models import Boundary, LayerKind
from boundaries.selectors import active_layer_ids, boundaries_containing

from .models import (
    Department,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceRequest,
    StatusEvent,
    Team,
)
from .routing import Area, RoutingError, route_among

# Metres per degree of latitude, rounded down, so the box built from it is never too small.
_METRES_PER_DEGREE = 110_000.0


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
    the team and the category's questions.

    ``public_ids`` overrides every other filter (as Open311 says). Datetimes are inclusive
    bounds. ``near`` is (WGS84 point, radius in metres); ``bbox`` is (west, south, east, north)
    in degrees.
    """
    requests = ServiceRequest.objects.select_related("category", "department", "status")
    requests = requests.prefetch_related(_public_events())
    if extended:
        requests = requests.select_related("team").prefetch_related("category__attributes")
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
    if bbox:
        requests = requests.filter(location__intersects=Polygon.from_bbox(bbox))
    if near:
        requests = _within_metres(requests, point=near[0], metres=near[1])
    return requests


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
        "created_at",
        "status__code",
        "status__name",
        "status__open311_status",
        "request__public_id",
        "request__media_url",
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
