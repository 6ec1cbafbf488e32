"""Which department serves a point for a category, and why.

``route`` answers with one boundary query and one rules query; the answer carries the rule and
the matched boundaries (layer, code, name, version) so they can be frozen on the request.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.gis.geos import Point
from django.db.models import Q

from boundaries.models import Boundary, LayerKind
from boundaries.selectors import active_layer_ids, boundaries_containing

from .models import Department, RoutingRule, ServiceCategory, Team


class RoutingError(Exception):
    """The point cannot be served for this category; the message says why."""


@dataclass
class Routing:
    department: Department
    team: Team | None
    rule: RoutingRule | None
    boundaries: list[Boundary] = field(default_factory=list)

    def as_record(self) -> dict:
        """What is stored on the request: readable after rules and boundary versions change."""
        return {
            "rule_id": self.rule.pk if self.rule else None,
            "rule": self.rule.describe() if self.rule else "category default department",
            "department": self.department.slug,
            "team": self.team.slug if self.team else None,
            "boundaries": [
                {
                    "layer": b.version.layer.slug,
                    "code": b.code,
                    "name": b.name,
                    "version": b.version.number,
                }
                for b in self.boundaries
            ],
        }


def route(*, category: ServiceCategory, point: Point) -> Routing:
    """Route a WGS84 point for ``category``; raise RoutingError when it is not served."""
    matched = list(boundaries_containing(point=point))
    layer_ids = {b.version.layer_id for b in matched}
    rules = RoutingRule.objects.filter(
        Q(category=category) | Q(category__isnull=True, group__in=[category.group, ""]),
        Q(layer__isnull=True) | Q(layer_id__in=list(layer_ids)),
    ).select_related("department", "team", "layer", "category")
    return route_among(
        category=category,
        matched=matched,
        outline_layer_ids=active_layer_ids(kind=LayerKind.JURISDICTION),
        rules=rules,
    )


def route_among(
    *,
    category: ServiceCategory,
    matched: list[Boundary],
    outline_layer_ids: set[int],
    rules: Iterable[RoutingRule],
) -> Routing:
    """``route`` without queries, for callers that route many categories at one point (coverage):
    ``matched`` are the boundaries containing the point, ``outline_layer_ids`` the active
    jurisdiction layers, ``rules`` any superset of the rules that may apply, in priority order.
    """
    by_layer: dict[int, list[Boundary]] = {}
    for boundary in matched:
        by_layer.setdefault(boundary.version.layer_id, []).append(boundary)

    if outline_layer_ids and not any(layer_id in by_layer for layer_id in outline_layer_ids):
        raise RoutingError("the location is outside the area this service covers")
    missing = [layer.slug for layer in category.required_layers.all() if layer.pk not in by_layer]
    if missing:
        raise RoutingError(
            f"the location is outside every {', '.join(missing)} area, so "
            f"'{category.name}' cannot be routed there"
        )

    codes = {(b.version.layer_id, b.code) for b in matched}
    best: RoutingRule | None = None
    for rule in rules:
        if rule.category_id and rule.category_id != category.pk:
            continue
        if rule.group and rule.group != category.group:
            continue
        if rule.layer_id and rule.layer_id not in by_layer:
            continue
        if rule.boundary_code and (rule.layer_id, rule.boundary_code) not in codes:
            continue
        if best is None or (rule.specificity, rule.priority) > (best.specificity, best.priority):
            best = rule
    if best is None:
        return Routing(category.default_department, None, None, matched)
    return Routing(best.department, best.team, best, matched)
