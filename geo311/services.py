"""Writes for service requests. Every write is one transaction: the request, its first status
event (and, later, its notification jobs) commit together or not at all."""

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .addresses import normalize_address
from .cache import CityConfig, city_config
from .duplicates import duplicate_candidates, likely_duplicate, policy_for, service_notice
from .models import (
    Channel,
    Datatype,
    ServiceAttribute,
    ServiceCategory,
    ServiceRequest,
    ServiceType,
    Status,
    StatusEvent,
)
from .routing import RoutingError, route
from .sql_requests import request_insert

MAX_DESCRIPTION = 4000

# What full_clean checks on a new request: the values its caller gave (lengths, e-mail address,
# URL, channel, time). The rest is checked or built above: related rows loaded or chosen (full_clean
# would query each), the point, the cleaned answers, the routing record, the times and the
# duplicate link (the JSON fields alone cost more to check than the rest together). The unique
# fields are the two ids the database and secrets make, so there is no uniqueness to check.
_FROM_CALLER = {
    "address",
    "address_id",
    "zipcode",
    "description",
    "media_url",
    "channel",
    "reporter_first_name",
    "reporter_last_name",
    "reporter_email",
    "reporter_phone",
    "reporter_device_id",
    "reporter_account_id",
    "requested_at",
}
_NOT_FROM_CALLER = [f.name for f in ServiceRequest._meta.fields if f.name not in _FROM_CALLER]


@dataclass(frozen=True)
class Reporter:
    """Private contact details of the person reporting; never shown publicly."""

    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    device_id: str = ""
    account_id: str = ""


def location_from_lat_long(*, lat: object, long: object) -> Point:
    """A WGS84 point from user input; ValidationError naming the field when it is not one."""
    values = {}
    for name, raw, limit in (("lat", lat, 90.0), ("long", long, 180.0)):
        try:
            value = float(str(raw))
        except (TypeError, ValueError):
            raise ValidationError({name: f"{name} must be a number, got '{raw}'"}) from None
        if not math.isfinite(value) or abs(value) > limit:
            raise ValidationError({name: f"{name} must be between -{limit:g} and {limit:g}"})
        values[name] = value
    return Point(values["long"], values["lat"], srid=4326)


def attributes_clean(
    *, category: ServiceCategory, answers: Mapping[str, Sequence[str]]
) -> dict[str, object]:
    """Check answers (code → submitted values) against the category's service definition.

    Returns the stored form: numbers as numbers, datetimes as ISO text, multivaluelists as lists.
    Raises ValidationError naming each attribute that is missing, unknown or of the wrong type.
    """
    definition = {a.code: a for a in category.attributes.all()}
    errors: dict[str, str] = {}
    clean: dict[str, object] = {}
    for code in answers:
        if code not in definition or not definition[code].variable:
            errors[f"attribute[{code}]"] = f"'{code}' is not a question of {category.service_code}"
    for code, attribute in definition.items():
        if not attribute.variable:
            continue
        values = [v for v in answers.get(code, []) if str(v).strip() != ""]
        if not values:
            if attribute.required:
                errors[f"attribute[{code}]"] = f"required: {attribute.description}"
            continue
        try:
            clean[code] = _clean_answer(attribute, values)
        except ValueError as exc:
            errors[f"attribute[{code}]"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return clean


def _clean_answer(attribute: ServiceAttribute, values: list[str]) -> object:
    datatype = attribute.datatype
    if datatype == Datatype.MULTIVALUELIST:
        keys = [v.key for v in attribute.values.all()]
        unknown = [v for v in values if v not in keys]
        if unknown:
            raise ValueError(f"not a choice: {', '.join(unknown)} (choices: {', '.join(keys)})")
        return list(dict.fromkeys(values))
    if len(values) > 1:
        raise ValueError("takes one value")
    value = str(values[0]).strip()
    if datatype == Datatype.NUMBER:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"must be a number, got '{value}'") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return int(number) if number.is_integer() else number
    if datatype == Datatype.DATETIME:
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"must be a date-time like 2026-11-26T14:03:00-06:00, got '{value}'")
        return parsed.isoformat()
    if datatype == Datatype.SINGLEVALUELIST:
        keys = [v.key for v in attribute.values.all()]
        if value not in keys:
            raise ValueError(f"not a choice: {value} (choices: {', '.join(keys)})")
        return value
    if datatype == Datatype.STRING and len(value) > 300:
        raise ValueError("at most 300 characters")
    if datatype == Datatype.TEXT and len(value) > MAX_DESCRIPTION:
        raise ValueError(f"at most {MAX_DESCRIPTION} characters")
    return value


def initial_status(*, config: CityConfig | None = None) -> Status:
    status = (config or city_config()).initial_status
    if status is None:
        raise ValidationError("no initial status is configured; load a city config")
    return status


@transaction.atomic
def request_create(
    *,
    category: ServiceCategory,
    location: Point,
    description: str = "",
    answers: Mapping[str, Sequence[str]] | None = None,
    address: str = "",
    address_id: str = "",
    zipcode: str = "",
    media_url: str = "",
    channel: str = Channel.API,
    reporter: Reporter | None = None,
    requested_at: dt.datetime | None = None,
    config: CityConfig | None = None,
) -> ServiceRequest:
    """File a request at ``location`` (EPSG:4326): check it, route it, store it with its first
    status event. Raises ValidationError with field names for anything the reporter must fix.

    The category's questions, the rules and the statuses are read from ``config``, the city
    configuration the caller already checked for this request (default: ``city_config()``).
    """
    config = config or city_config()
    if not category.active:
        raise ValidationError({"service_code": f"{category.service_code} is not taken any more"})
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(
            {"description": f"at most {MAX_DESCRIPTION} characters, got {len(description)}"}
        )
    clean = attributes_clean(category=config.definition(category), answers=answers or {})
    try:
        routing = route(category=category, point=location, config=config)
    except RoutingError as exc:
        raise ValidationError({"location": str(exc)}) from exc
    now = timezone.now()
    reporter = reporter or Reporter()
    status = initial_status(config=config)
    notice = ""
    if category.type == ServiceType.BATCH:
        notice = "Your report is queued; its id is given by the token."
    # Linked for staff to confirm, never merged: the reporter is told, the request goes ahead.
    duplicate = likely_duplicate(
        category=category,
        candidates=duplicate_candidates(
            category=category,
            point=location,
            at=requested_at or now,
            address=address,
            description=description,
            limit=1,
            min_score=policy_for(category=category).likely_score,
        ),
    )
    if duplicate:
        notice = " ".join(n for n in (notice, service_notice(duplicate)) if n)
    request = ServiceRequest(
        category=category,
        department=routing.department,
        team=routing.team,
        status=status,
        location=location,
        address=address,
        address_key=normalize_address(address) if address.strip() else "",
        address_id=address_id,
        zipcode=zipcode,
        description=description,
        attributes=clean,
        media_url=media_url,
        channel=channel,
        service_notice=notice,
        reporter_first_name=reporter.first_name,
        reporter_last_name=reporter.last_name,
        reporter_email=reporter.email,
        reporter_phone=reporter.phone,
        reporter_device_id=reporter.device_id,
        reporter_account_id=reporter.account_id,
        routing_rule=routing.rule,
        routing=routing.as_record(),
        requested_at=requested_at or now,
        updated_at=now,
        possible_duplicate_of=duplicate.request if duplicate else None,
        duplicate_score=duplicate.score if duplicate else None,
        duplicate_reasons=duplicate.reasons if duplicate else [],
    )
    request.full_clean(exclude=_NOT_FROM_CALLER, validate_unique=False)
    event = StatusEvent(
        request=request, status=status, created_at=now, note="Received", actor="geo311"
    )
    request_insert(request=request, event=event)
    return request
