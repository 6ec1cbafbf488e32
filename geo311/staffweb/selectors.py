"""Reads of the staff pages, on top of ``geo311.selectors.staff_queue`` (which holds the
department scoping of ``geo311.roles``): the live counts, the queue as GeoJSON for the map, and
a crew's open work sorted by distance."""

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.gis.db.models import PointField
from django.contrib.gis.db.models.functions import AsGeoJSON, Distance
from django.contrib.gis.geos import Point
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from geo311 import selectors
from geo311.models import ServiceRequest, Status, StatusTransition
from geo311.roles import staff_profile


def queue_counts(*, user: Any) -> dict[str, Any]:
    """Open, overdue and unassigned requests per open status of everything ``user`` works on
    (their queue without filters), and the totals: what the queue page keeps live. Statuses
    without open requests are listed with zeros, in the city's order."""
    now = timezone.now()
    rows = {
        row["status__code"]: row
        for row in selectors.staff_queue(user=user, open_only=True)
        .order_by()
        .values("status__code")
        .annotate(
            open=Count("pk"),
            overdue=Count("pk", filter=Q(expected_at__lt=now)),
            unassigned=Count("pk", filter=Q(assignee__isnull=True)),
        )
    }
    statuses = []
    totals = {"open": 0, "overdue": 0, "unassigned": 0}
    for status in Status.objects.filter(open311_status="open").order_by("order", "pk"):
        row = rows.get(status.code, {})
        counts = {key: int(row.get(key, 0)) for key in totals}
        for key, value in counts.items():
            totals[key] += value
        statuses.append({"status": status.code, "name": status.name, **counts})
    return {"statuses": statuses, "totals": totals}


def queue_geojson(*, requests: QuerySet[ServiceRequest], limit: int) -> dict[str, Any]:
    """The first ``limit`` of ``requests`` as a GeoJSON FeatureCollection (exact points: the
    staff pages only), geometry written by PostGIS; ``truncated`` says when more matched."""
    now = timezone.now()
    rows = list(
        requests.annotate(geometry=AsGeoJSON("location", precision=6)).values(
            "public_id",
            "geometry",
            "category__name",
            "status__code",
            "status__name",
            "status__open311_status",
            "expected_at",
            "assignee__username",
            "address",
        )[: limit + 1]
    )
    features = [
        {
            "type": "Feature",
            "id": row["public_id"],
            "geometry": json.loads(row["geometry"]),
            "properties": {
                "service_request_id": row["public_id"],
                "service_name": row["category__name"],
                "status": row["status__code"],
                "status_name": row["status__name"],
                "assignee": row["assignee__username"],
                "address": row["address"],
                "overdue": bool(
                    row["status__open311_status"] == "open"
                    and row["expected_at"]
                    and row["expected_at"] < now
                ),
            },
        }
        for row in rows[:limit]
    ]
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > limit}


def field_work(*, user: Any, near: Point | None = None) -> QuerySet[ServiceRequest]:
    """``user``'s open field work: the requests assigned to them, and the unassigned ones of
    their crew team. With ``near`` (WGS84) each carries ``distance_m``, metres on the spheroid
    (geography), nearest first; otherwise oldest first."""
    mine = Q(assignee_id=user.pk)
    profile = staff_profile(user)
    if profile is not None and profile.team_id:
        mine |= Q(team_id=profile.team_id, assignee__isnull=True)
    # The crew reads the description (the queue defers it); the rest stays deferred.
    work = (
        selectors.staff_queue(user=user, open_only=True)
        .filter(mine)
        .defer(None)
        .defer("attributes", "routing", "duplicate_reasons")
    )
    if near is None:
        return work.order_by("requested_at", "pk")
    # ST_Distance(geography, geography): metres on the spheroid (GeoDjango sends ``near`` as a
    # geography since the column is cast to one).
    geography: PointField = PointField(geography=True, srid=4326)
    return work.annotate(distance_m=Distance(Cast("location", geography), near)).order_by(
        "distance_m", "pk"
    )


@dataclass(frozen=True)
class Rule:
    """A transition the city allows, and whether it needs a public note."""

    to_status: str
    note_required: bool


def transition_rules() -> dict[int, dict[str, Rule]]:
    """Every transition of the city config, by from-status id and to-status code (one query,
    for pages that show the allowed changes of many requests)."""
    rules: dict[int, dict[str, Rule]] = {}
    for from_id, code, note in StatusTransition.objects.values_list(
        "from_status_id", "to_status__code", "note_required"
    ):
        rules.setdefault(from_id, {})[code] = Rule(code, note)
    return rules
