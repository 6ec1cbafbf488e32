"""Which department serves a point for a category, and why.

``route`` answers with one query (the areas covering the point, the active jurisdiction layers
and the configuration's generation); the rules and the category's required layers come from the
process's copy of the city configuration (``geo311.cache``). The answer carries the rule and the
matched areas (layer, code, name, version) so they can be frozen on the request.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from django.contrib.gis.geos import Point

from boundaries.models import Boundary

from . import sql_requests
from .cache import CityConfig, ConfigurationChanged, city_config
from .models import Department, RoutingRule, ServiceCategory, Team


class RoutingError(Exception):
    """The point cannot be served for this category; the message says why."""


@dataclass(frozen=True)
class Area:
    """A boundary a point fell in, as routing reads it and the request stores it."""

    layer_id: int
    layer: str  # the layer's slug
    code: str
    name: str
    version: int  # the layer version's number

    @classmethod
    def of(cls, boundary: Boundary) -> "Area":
        version = boundary.version
        return cls(
            version.layer_id, version.layer.slug, boundary.code, boundary.name, version.number
        )


@dataclass
class Routing:
    department: Department
    team: Team | None
    rule: RoutingRule | None
    boundaries: list[Area] = field(default_factory=list)

    def as_record(self) -> dict:
        """What is stored on the request: readable after rules and boundary versions change."""
        return {
            "rule_id": self.rule.pk if self.rule else None,
            "rule": self.rule.describe() if self.rule else "category default department",
            "department": self.department.slug,
            "team": self.team.slug if self.team else None,
            "boundaries": [
                {"layer": a.layer, "code": a.code, "name": a.name, "version": a.version}
                for a in self.boundaries
            ],
        }


def route(*, category: ServiceCategory, point: Point, config: CityConfig | None = None) -> Routing:
    """Route a WGS84 point for ``category``; raise RoutingError when it is not served. One query.

    ``config`` is the configuration the caller decided the rest of the request with; when the
    query finds the configuration has moved on since, ConfigurationChanged (decide again with
    ``cache.city_config()``). Without it, the configuration at the query's generation is used.
    """
    if point.srid not in (None, 4326):
        point = cast(Point, point.transform(4326, clone=True))
    found = sql_requests.areas_at(lon=point.x, lat=point.y)
    if config is None:
        config = city_config(generation=found.generation)
    elif config.generation != found.generation:
        raise ConfigurationChanged(
            f"configuration {config.generation} is now at {found.generation}"
        )
    definition = config.definition(category)
    return route_among(
        category=definition,
        matched=[Area(*row) for row in found.areas],
        outline_layer_ids=found.outline_layer_ids,
        rules=config.rules_for(definition),
    )


def route_among(
    *,
    category: ServiceCategory,
    matched: list[Area],
    outline_layer_ids: set[int],
    rules: Iterable[RoutingRule],
) -> Routing:
    """``route`` without queries, for callers that route many categories at one point (coverage):
    ``matched`` are the areas containing the point, ``outline_layer_ids`` the active
    jurisdiction layers, ``rules`` any superset of the rules that may apply, in priority order.
    """
    by_layer: dict[int, list[Area]] = {}
    for area in matched:
        by_layer.setdefault(area.layer_id, []).append(area)

    if outline_layer_ids and not any(layer_id in by_layer for layer_id in outline_layer_ids):
        raise RoutingError("the location is outside the area this service covers")
    missing = [layer.slug for layer in category.required_layers.all() if layer.pk not in by_layer]
    if missing:
        raise RoutingError(
            f"the location is outside every {', '.join(missing)} area, so "
            f"'{category.name}' cannot be routed there"
        )

    codes = {(a.layer_id, a.code) for a in matched}
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
