"""A city's departments, categories, questions, statuses, the transitions between statuses,
service levels and routing rules as data: one YAML or JSON file, loaded by ``manage.py
load_city_config FILE`` and editable in the admin afterwards.

Loading is an upsert by natural key (department slug, service code, attribute code, status code),
so it can run again; a category's questions, the transitions, the service levels and the routing
rules are replaced by the file's when it has them. Nothing is written when any entry is wrong,
and every wrong entry is named.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from boundaries.models import Layer

from .models import (
    AttributeValue,
    Datatype,
    Department,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceLevel,
    ServiceType,
    Status,
    StatusTransition,
    Team,
)


class CityConfigError(Exception):
    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        return "\n".join([self.args[0], *(f"  - {p}" for p in self.problems)])


@dataclass
class ConfigReport:
    statuses: int = 0
    departments: int = 0
    teams: int = 0
    categories: int = 0
    attributes: int = 0
    rules: int = 0
    transitions: int = 0
    service_levels: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.statuses} statuses ({self.transitions} transitions), "
            f"{self.departments} departments ({self.teams} teams), "
            f"{self.categories} categories ({self.attributes} questions, "
            f"{self.service_levels} service levels), {self.rules} rules"
        )


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CityConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CityConfigError(f"{path}: expected a mapping with departments, categories, rules")
    return data


@transaction.atomic
def city_config_load(*, data: dict[str, Any]) -> ConfigReport:
    """Load a parsed config (see ``geo311/demo/chicago/city.yaml`` for the format)."""
    problems: list[str] = []
    report = ConfigReport()

    for flag in ("initial", "duplicate"):
        if sum(bool(item.get(flag)) for item in data.get("statuses", [])) > 1:
            raise CityConfigError(f"statuses: at most one status may be marked {flag}: true")
    if any(item.get("initial") for item in data.get("statuses", [])):
        Status.objects.update(is_initial=False)  # the file names the new initial status
    if any(item.get("duplicate") for item in data.get("statuses", [])):
        Status.objects.update(is_duplicate=False)  # ... and the status merges give
    for n, item in enumerate(data.get("statuses", []), start=1):
        where = f"statuses[{n}] ({item.get('code', '?')})"
        if item.get("open311") not in ("open", "closed"):
            problems.append(f"{where}: open311 must be 'open' or 'closed'")
            continue
        if item.get("duplicate") and item["open311"] != "closed":
            problems.append(f"{where}: the duplicate status must be closed")
            continue
        _save(
            problems,
            where,
            Status,
            {"code": item.get("code")},
            name=item.get("name", item.get("code", "")),
            open311_status=item["open311"],
            is_initial=bool(item.get("initial", False)),
            is_duplicate=bool(item.get("duplicate", False)),
            description=item.get("description", ""),
            order=n,
        )
        report.statuses += 1
    if "transitions" in data:
        report.transitions = _load_transitions(problems, data["transitions"])

    departments: dict[str, Department] = {d.slug: d for d in Department.objects.all()}
    for n, item in enumerate(data.get("departments", []), start=1):
        where = f"departments[{n}] ({item.get('slug', '?')})"
        dept = _save(
            problems,
            where,
            Department,
            {"slug": item.get("slug")},
            name=item.get("name", ""),
            email=item.get("email", ""),
            phone=item.get("phone", ""),
            url=item.get("url", ""),
            description=item.get("description", ""),
        )
        if dept is None:
            continue
        departments[dept.slug] = dept
        report.departments += 1
        for t, team in enumerate(item.get("teams", []), start=1):
            _save(
                problems,
                f"{where}.teams[{t}]",
                Team,
                {"department": dept, "slug": team.get("slug")},
                name=team.get("name", ""),
                email=team.get("email", ""),
            )
            report.teams += 1

    layers = {layer.slug: layer for layer in Layer.objects.all()}
    categories: dict[str, ServiceCategory] = {}
    for n, item in enumerate(data.get("categories", []), start=1):
        where = f"categories[{n}] ({item.get('code', '?')})"
        dept = departments.get(item.get("department", ""))
        if dept is None:
            problems.append(f"{where}: unknown department '{item.get('department')}'")
            continue
        if item.get("type", "realtime") not in ServiceType.values:
            problems.append(f"{where}: type must be one of {', '.join(ServiceType.values)}")
            continue
        category = _save(
            problems,
            where,
            ServiceCategory,
            {"service_code": item.get("code")},
            name=item.get("name", ""),
            description=item.get("description", ""),
            group=item.get("group", ""),
            keywords=", ".join(item.get("keywords", [])),
            type=item.get("type", "realtime"),
            default_department=dept,
            active=bool(item.get("active", True)),
            sensitive=bool(item.get("sensitive", False)),
            order=n,
        )
        if category is None:
            continue
        categories[category.service_code] = category
        report.categories += 1
        required = []
        for slug in item.get("required_layers", []):
            if slug in layers:
                required.append(layers[slug])
            else:
                problems.append(f"{where}: unknown layer '{slug}' in required_layers")
        category.required_layers.set(required)
        report.attributes += _load_attributes(problems, where, category, item)

    if "service_levels" in data:
        report.service_levels = _load_service_levels(
            problems, data["service_levels"], categories, layers
        )

    # Rules have no natural key: a rule of the file that equals a stored one keeps that row (and
    # the requests routed by it keep their link); stored rules the file lacks are removed.
    unmatched: dict[tuple, list[RoutingRule]] = {}
    for stored in RoutingRule.objects.all() if "rules" in data else []:
        unmatched.setdefault(_rule_key(stored), []).append(stored)
    for n, item in enumerate(data.get("rules", []), start=1):
        where = f"rules[{n}]"
        rule = RoutingRule(
            group=item.get("group", ""),
            boundary_code=str(item.get("boundary_code", "")),
            priority=int(item.get("priority", 0)),
            note=item.get("note", ""),
        )
        if "category" in item:
            if item["category"] not in categories:
                problems.append(f"{where}: unknown category '{item['category']}'")
                continue
            rule.category = categories[item["category"]]
        if "layer" in item:
            if item["layer"] not in layers:
                problems.append(f"{where}: unknown layer '{item['layer']}' (load it first)")
                continue
            rule.layer = layers[item["layer"]]
        if item.get("department") not in departments:
            problems.append(f"{where}: unknown department '{item.get('department')}'")
            continue
        rule.department = departments[item["department"]]
        if item.get("team"):
            rule.team = Team.objects.filter(department=rule.department, slug=item["team"]).first()
            if rule.team is None:
                problems.append(
                    f"{where}: department '{item['department']}' has no team '{item['team']}'"
                )
                continue
        try:
            rule.full_clean()
        except ValidationError as exc:
            problems.append(f"{where}: {_messages(exc)}")
            continue
        if not unmatched.get(_rule_key(rule)):
            rule.save()
        else:
            unmatched[_rule_key(rule)].pop()
        report.rules += 1
    stale = [r.pk for rules in unmatched.values() for r in rules]
    RoutingRule.objects.filter(pk__in=stale).delete()

    if not Status.objects.filter(is_initial=True).exists():
        problems.append("statuses: one status must be marked initial: true")
    if problems:
        raise CityConfigError(f"{len(problems)} problem(s); nothing was loaded", problems)
    return report


def _rule_key(rule: RoutingRule) -> tuple:
    return (
        rule.category_id,
        rule.group,
        rule.layer_id,
        rule.boundary_code,
        rule.department_id,
        rule.team_id,
        rule.priority,
        rule.note,
    )


def _load_transitions(problems: list[str], spec: Any) -> int:
    """``{from: [to, {to: code, note_required: true}, ...]}`` → StatusTransition rows (all
    replaced)."""
    if not isinstance(spec, dict):
        problems.append("transitions: expected a mapping of status code → list of status codes")
        return 0
    statuses = {s.code: s for s in Status.objects.all()}
    wanted: dict[tuple[int, int], bool] = {}
    for source, targets in spec.items():
        where = f"transitions.{source}"
        if source not in statuses:
            problems.append(f"{where}: unknown status '{source}'")
            continue
        for n, target in enumerate(targets or [], start=1):
            item = target if isinstance(target, dict) else {"to": target}
            code = str(item.get("to", ""))
            if code not in statuses:
                problems.append(f"{where}[{n}]: unknown status '{code}'")
                continue
            if code == source:
                problems.append(f"{where}[{n}]: a transition must change the status")
                continue
            if statuses[code].is_duplicate:
                problems.append(
                    f"{where}[{n}]: '{code}' is the duplicate status; only a merge gives it"
                )
                continue
            wanted[(statuses[source].pk, statuses[code].pk)] = bool(item.get("note_required"))
    # Kept rows stay as they are, so the audit trail shows only real changes.
    for transition in StatusTransition.objects.all():
        key = (transition.from_status_id, transition.to_status_id)
        if key not in wanted:
            transition.delete()
        elif transition.note_required != wanted.pop(key):
            transition.note_required = not transition.note_required
            transition.save(update_fields=["note_required"])
    StatusTransition.objects.bulk_create(
        StatusTransition(from_status_id=a, to_status_id=b, note_required=note)
        for (a, b), note in wanted.items()
    )
    return StatusTransition.objects.count()


def _load_service_levels(
    problems: list[str],
    spec: Any,
    categories: dict[str, ServiceCategory],
    layers: dict[str, Layer],
) -> int:
    """``[{category, hours[, layer, boundary_code, note]}]`` → ServiceLevel rows; levels the
    file does not name are removed."""
    kept: list[int] = []
    for n, item in enumerate(spec or [], start=1):
        where = f"service_levels[{n}]"
        category = (
            categories.get(item.get("category", ""))
            or ServiceCategory.objects.filter(service_code=item.get("category", "")).first()
        )
        if category is None:
            problems.append(f"{where}: unknown category '{item.get('category')}'")
            continue
        layer = None
        if "layer" in item:
            layer = layers.get(item["layer"])
            if layer is None:
                problems.append(f"{where}: unknown layer '{item['layer']}' (load it first)")
                continue
        code = str(item.get("boundary_code", ""))
        if bool(layer) != bool(code):
            problems.append(f"{where}: a zone names both layer and boundary_code")
            continue
        hours = item.get("hours")
        if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
            problems.append(f"{where}: hours must be a whole number of at least 1, got '{hours}'")
            continue
        level = ServiceLevel.objects.filter(
            category=category, layer=layer, boundary_code=code
        ).first() or ServiceLevel(category=category, layer=layer, boundary_code=code)
        if level.pk and (level.hours, level.note) == (hours, item.get("note", "")):
            kept.append(level.pk)  # unchanged: no write, nothing in the audit trail
            continue
        level.hours, level.note = hours, item.get("note", "")
        level.save()
        kept.append(level.pk)
    ServiceLevel.objects.exclude(pk__in=kept).delete()
    return len(kept)


def _load_attributes(
    problems: list[str], where: str, category: ServiceCategory, item: dict[str, Any]
) -> int:
    codes = []
    for order, spec in enumerate(item.get("attributes", []), start=1):
        here = f"{where}.attributes[{order}] ({spec.get('code', '?')})"
        if spec.get("datatype") not in Datatype.values:
            problems.append(f"{here}: datatype must be one of {', '.join(Datatype.values)}")
            continue
        codes.append(spec.get("code"))
        # Orders are unique per category: park the old ones out of the way before renumbering.
        ServiceAttribute.objects.filter(category=category).exclude(code__in=codes).update(
            order=10_000 + order
        )
        attribute = _save(
            problems,
            here,
            ServiceAttribute,
            {"category": category, "code": spec.get("code")},
            variable=bool(spec.get("variable", True)),
            datatype=spec["datatype"],
            required=bool(spec.get("required", False)),
            datatype_description=spec.get("datatype_description", ""),
            order=order,
            description=spec.get("description", ""),
        )
        if attribute is None:
            continue
        values = spec.get("values", [])
        listed = spec["datatype"] in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST)
        if listed and not values:
            problems.append(f"{here}: a {spec['datatype']} needs values")
        attribute.values.all().delete()
        AttributeValue.objects.bulk_create(
            AttributeValue(
                attribute=attribute, key=str(v["key"]), name=v.get("name", v["key"]), order=i
            )
            for i, v in enumerate(values, start=1)
        )
    ServiceAttribute.objects.filter(category=category).exclude(code__in=codes).delete()
    return len(codes)


def _save(problems: list[str], where: str, model: Any, keys: dict, **values: Any) -> Any:
    """Upsert one object by its natural key, validated; record the problem and return None."""
    if any(v in (None, "") for v in keys.values()):
        problems.append(f"{where}: missing {', '.join(k for k, v in keys.items() if not v)}")
        return None
    obj = model.objects.filter(**keys).first() or model(**keys)
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        obj.full_clean(validate_constraints=False)
    except ValidationError as exc:
        problems.append(f"{where}: {_messages(exc)}")
        return None
    obj.save()
    return obj


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)
