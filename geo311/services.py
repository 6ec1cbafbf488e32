"""Writes for service requests. Every write is one transaction: the request, its first status
event and its notification job commit together or not at all.

Every change a resident or staff would be told about (creation, each transition, assignment,
note, merge, move) writes its event through ``request_event_record``, inside the transaction of
the change, which queues its notifications there (``geo311.notifications.services.event_notify``,
one job per event). Changes of request rows are also in the audit trail
(``geo311.models.audited``), with who acted from ``Actor.history_context``.
"""

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pghistory
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from .addresses import normalize_address
from .cache import CityConfig, city_config
from .duplicates import duplicate_candidates, likely_duplicate, policy_for, service_notice
from .models import (
    ApiKey,
    Channel,
    Datatype,
    EventKind,
    Follower,
    FollowerReason,
    FollowerUpdates,
    ServiceAttribute,
    ServiceCategory,
    ServiceRequest,
    ServiceType,
    StaffProfile,
    Status,
    StatusEvent,
    StatusTransition,
    Team,
)
from .notifications.services import event_notify
from .routing import Area, RoutingError, route
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
    filed_by: User | None = None,
    config: CityConfig | None = None,
) -> ServiceRequest:
    """File a request at ``location`` (EPSG:4326): check it, route it, give it the expected time
    of its service level, store it with its first status event and that event's notification
    job. ``filed_by`` is the signed-in user filing it (a call-taker for a caller). Raises
    ValidationError with field names for anything the reporter must fix.

    The category's questions and service levels, the rules and the statuses are read from
    ``config``, the city configuration the caller already checked for this request (default:
    ``city_config()``).
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
        expected_at=expected_at_for(
            category=config.definition(category),
            areas=routing.boundaries,
            requested_at=requested_at or now,
        ),
        filed_by=filed_by,
        possible_duplicate_of=duplicate.request if duplicate else None,
        duplicate_score=duplicate.score if duplicate else None,
        duplicate_reasons=duplicate.reasons if duplicate else [],
    )
    request.full_clean(exclude=_NOT_FROM_CALLER, validate_unique=False)
    event = _event_build(
        request=request,
        kind=EventKind.CREATED,
        actor=Actor(user=filed_by),
        note="Received",
        at=now,
    )
    request_insert(request=request, event=event)
    return request


def expected_at_for(
    *, category: ServiceCategory, areas: Iterable[Area], requested_at: dt.datetime
) -> dt.datetime | None:
    """When a request should be done: ``requested_at`` plus the hours of the category's service
    level (the shortest of its zones among ``areas``, the boundaries the request was routed by,
    else its city-wide level); None when the category has no level."""
    places = {(a.layer_id, a.code) for a in areas}
    levels = list(category.service_levels.all())
    zones = [lv.hours for lv in levels if lv.layer_id and (lv.layer_id, lv.boundary_code) in places]
    hours = min(zones) if zones else next((lv.hours for lv in levels if not lv.layer_id), None)
    return None if hours is None else requested_at + dt.timedelta(hours=hours)


# --- lifecycle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a signed-in user, an external system (by its api key), or geo311
    itself (neither)."""

    user: User | None = None
    api_key: ApiKey | None = None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.get_username()
        if self.api_key is not None:
            return f"api key: {self.api_key.name}"
        return "geo311"

    def history_context(self) -> pghistory.context:
        """The audit trail's context for the writes of one change: who, by user id and name."""
        return pghistory.context(
            user=self.user.pk if self.user is not None else None,
            api_key=self.api_key.pk if self.api_key is not None else None,
            actor=self.name,
        )


_url = URLValidator(schemes=["http", "https"])


def request_event_record(
    *,
    request: ServiceRequest,
    kind: str,
    actor: Actor,
    previous_status: Status | None = None,
    note: str = "",
    internal_note: str = "",
    photo_url: str = "",
    public: bool = True,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
    external_id: str = "",
) -> StatusEvent:
    """Write one event of ``request``'s history: the one function every change a resident or
    staff would be told about goes through (each transition, assignment, note, merge, move;
    creation writes its event with the request, in ``sql_requests.request_insert``, which
    queues the same job). It runs inside the transaction of the change (it refuses to run
    outside one), so whatever is queued here (notifications) commits with the change or not at
    all.

    ``request.status`` is already the status after the change; ``note`` is public when
    ``public``, ``internal_note`` never is. ``external_id`` is an external system's update id,
    accepted once per api key.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("request_event_record runs inside the transaction of its change")
    event = _event_build(
        request=request,
        kind=kind,
        actor=actor,
        previous_status=previous_status,
        note=note,
        internal_note=internal_note,
        photo_url=photo_url,
        public=public,
        data=data,
        at=at,
        external_id=external_id,
    )
    if not external_id:
        event.save()
    else:
        try:
            with transaction.atomic():  # a savepoint: the duplicate id is the caller's error
                event.save()
        except IntegrityError:
            raise ValidationError(
                {"update_id": f"update {external_id} was already accepted; it is not taken twice"}
            ) from None
    event_notify(event=event)
    return event


def _event_build(
    *,
    request: ServiceRequest,
    kind: str,
    actor: Actor,
    previous_status: Status | None = None,
    note: str = "",
    internal_note: str = "",
    photo_url: str = "",
    public: bool = True,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
    external_id: str = "",
) -> StatusEvent:
    """The unsaved event of ``request_event_record`` (its photo URL checked)."""
    if photo_url:
        try:
            _url(photo_url)
        except ValidationError:
            raise ValidationError({"photo_url": f"not an http(s) URL: '{photo_url}'"}) from None
    return StatusEvent(
        request=request,
        status_id=request.status_id,
        kind=kind,
        previous_status=previous_status,
        note=note,
        internal_note=internal_note,
        photo_url=photo_url,
        public=public,
        created_at=at or timezone.now(),
        actor=actor.name[:200],
        actor_user=actor.user,
        api_key=actor.api_key,
        external_id=external_id,
        data=data or {},
    )


def _locked(request: ServiceRequest) -> ServiceRequest:
    """``request`` read again under a row lock, so concurrent changes of one request queue up
    and each sees the one before it."""
    return (
        ServiceRequest.objects.select_related("status", "department", "category")
        .select_for_update(of=("self",))
        .get(pk=request.pk)
    )


def _status_set(request: ServiceRequest, status: Status, now: dt.datetime) -> None:
    if status.open311_status == "closed" and request.status.open311_status != "closed":
        request.closed_at = now
    elif status.open311_status == "open":
        request.closed_at = None
    request.status = status
    request.updated_at = now


def transitions_allowed(*, status: Status) -> list[str]:
    """Codes of the statuses ``status`` may change to (the city's transitions)."""
    return list(
        StatusTransition.objects.filter(from_status=status)
        .order_by("to_status__order")
        .values_list("to_status__code", flat=True)
    )


@transaction.atomic
def request_transition(
    *,
    request: ServiceRequest,
    status: Status,
    actor: Actor,
    public_note: str = "",
    internal_note: str = "",
    photo_url: str = "",
    external_id: str = "",
) -> StatusEvent:
    """Change ``request``'s status, if the city's transitions allow that change from its
    current status (and with a public note when the transition needs one). Closing sets
    ``closed_at``; reopening clears it. The duplicate status comes only with a merge
    (``request_merge``). Returns the event; ValidationError names the field to fix.
    """
    request = _locked(request)
    current = request.status
    if status.pk == current.pk:
        raise ValidationError({"status": f"the request is already '{current.code}'"})
    if status.is_duplicate:
        raise ValidationError(
            {"status": f"'{status.code}' is given by merging the request into the original"}
        )
    transition = StatusTransition.objects.filter(from_status=current, to_status=status).first()
    if transition is None:
        allowed = transitions_allowed(status=current)
        raise ValidationError(
            {
                "status": f"'{current.code}' cannot change to '{status.code}' "
                f"(allowed: {', '.join(allowed) or 'none'})"
            }
        )
    if transition.note_required and not public_note.strip():
        raise ValidationError(
            {"public_note": f"changing '{current.code}' to '{status.code}' needs a public note"}
        )
    now = timezone.now()
    _status_set(request, status, now)
    with actor.history_context():
        request.save(update_fields=["status", "closed_at", "updated_at"])
        return request_event_record(
            request=request,
            kind=EventKind.STATUS,
            actor=actor,
            previous_status=current,
            note=public_note.strip(),
            internal_note=internal_note.strip(),
            photo_url=photo_url,
            at=now,
            external_id=external_id,
        )


def assignment_targets(
    *, request: ServiceRequest, team: str = "", assignee: str = ""
) -> tuple[Team | None, User | None]:
    """The team (a slug of ``request``'s department) and the crew member (an active user's
    name) that a staff page or API names for ``request_assign``; ValidationError names the one
    that is unknown."""
    found_team = found_user = None
    if team:
        found_team = Team.objects.filter(department=request.department, slug=team).first()
        if found_team is None:
            raise ValidationError(
                {
                    "team": gettext("%(department)s has no team '%(team)s'")
                    % {"department": request.department, "team": team}
                }
            )
    if assignee:
        found_user = User.objects.filter(username=assignee, is_active=True).first()
        if found_user is None:
            raise ValidationError({"assignee": gettext("no user '%(user)s'") % {"user": assignee}})
    return found_team, found_user


@transaction.atomic
def request_assign(
    *,
    request: ServiceRequest,
    actor: Actor,
    team: Team | None = None,
    assignee: User | None = None,
    public_note: str = "",
    internal_note: str = "",
) -> StatusEvent:
    """Give ``request`` to a team of its department and/or a crew member (a user whose staff
    profile is in its department). Without ``team`` the assignee's own team takes it (or the
    current team stays); a new team without a new assignee leaves the request unassigned
    within it. The event is public only with a public note (crew names are not published).
    """
    request = _locked(request)
    if team is None and assignee is None:
        raise ValidationError({"team": "name a team or an assignee"})
    department = request.department
    if team is not None and team.department_id != request.department_id:
        raise ValidationError({"team": f"'{team.slug}' is not a team of {department}"})
    profile = None
    if assignee is not None:
        profile = StaffProfile.objects.filter(user=assignee).first()
        if profile is None or profile.department_id != request.department_id:
            raise ValidationError(
                {"assignee": f"'{assignee.get_username()}' does not work for {department}"}
            )
    new_team = team or (profile.team if profile and profile.team_id else None) or request.team
    new_assignee = assignee
    if new_assignee is None and new_team == request.team:
        new_assignee = request.assignee
    if (new_team, new_assignee) == (request.team, request.assignee):
        raise ValidationError({"assignee": "the request is already assigned so"})
    data = {
        "team": new_team.slug if new_team else None,
        "assignee": new_assignee.pk if new_assignee else None,
        "assignee_name": new_assignee.get_username() if new_assignee else None,
        "previous_team": request.team.slug if request.team else None,
        "previous_assignee": request.assignee_id,
    }
    now = timezone.now()
    request.team, request.assignee, request.updated_at = new_team, new_assignee, now
    with actor.history_context():
        request.save(update_fields=["team", "assignee", "updated_at"])
        return request_event_record(
            request=request,
            kind=EventKind.ASSIGNED,
            actor=actor,
            note=public_note.strip(),
            internal_note=internal_note.strip(),
            public=bool(public_note.strip()),
            data=data,
            at=now,
        )


@transaction.atomic
def request_note_add(
    *,
    request: ServiceRequest,
    actor: Actor,
    public_note: str = "",
    internal_note: str = "",
    photo_url: str = "",
    external_id: str = "",
) -> StatusEvent:
    """Add a note to ``request`` without changing its status: public (with an optional photo),
    internal, or both. A public note moves ``updated_at`` (Open311 updated_datetime)."""
    if not (public_note.strip() or internal_note.strip() or photo_url):
        raise ValidationError(
            {"public_note": "write a public or an internal note, or give a photo"}
        )
    request = _locked(request)
    public = bool(public_note.strip() or photo_url)
    now = timezone.now()
    with actor.history_context():
        if public:
            request.updated_at = now
            request.save(update_fields=["updated_at"])
        return request_event_record(
            request=request,
            kind=EventKind.NOTE,
            actor=actor,
            note=public_note.strip(),
            internal_note=internal_note.strip(),
            photo_url=photo_url,
            public=public,
            at=now,
            external_id=external_id,
        )


def _contact(email: str, phone: str) -> tuple[str, str]:
    """Email and phone in the form followers are compared by (lower-case email; phone digits
    with an optional leading +)."""
    email = email.strip().lower()
    phone = phone.strip()
    digits = "".join(c for c in phone if c.isdigit())
    return email, (("+" if phone.startswith("+") else "") + digits) if digits else ""


def _follower_of(request: ServiceRequest, email: str, phone: str) -> Follower | None:
    match = Q(pk__in=[])
    if email:
        match |= Q(email=email)
    if phone:
        match |= Q(phone=phone)
    return Follower.objects.filter(match, request=request).first()


@transaction.atomic
def request_merge(
    *,
    duplicate: ServiceRequest,
    parent: ServiceRequest,
    actor: Actor,
    public_note: str = "",
    internal_note: str = "",
) -> StatusEvent:
    """Mark ``duplicate`` as a repeat of ``parent`` (Open311 ``parent_service_request_id``):

    - its followers, and its reporter as a follower, move to the parent (a contact already
      following the parent is kept once, with the parent's preferences);
    - both link to each other (``duplicate.duplicate_of``, ``parent.duplicates``); earlier
      duplicates of ``duplicate`` and requests suggested as its possible duplicates now point at
      the parent, so no link ends at a duplicate;
    - it is closed with the duplicate status, and both get an event.

    A parent that is itself a duplicate is replaced by its original. Returns the duplicate's
    event.
    """
    first, second = sorted([duplicate.pk, parent.pk])
    locked = {
        r.pk: r
        for r in ServiceRequest.objects.select_related("status", "duplicate_of")
        .select_for_update(of=("self",))
        .filter(pk__in=[first, second])
        .order_by("pk")  # one lock order for every merge: no deadlock between two
    }
    duplicate, parent = locked[duplicate.pk], locked[parent.pk]
    original = parent.duplicate_of or parent
    if original.pk == duplicate.pk:
        raise ValidationError({"parent": "a request cannot be merged into itself"})
    if duplicate.duplicate_of is not None:
        raise ValidationError(
            {"parent": f"the request is already merged into {duplicate.duplicate_of.public_id}"}
        )
    if duplicate.status.open311_status == "closed":
        raise ValidationError(
            {"parent": f"the request is closed ('{duplicate.status.code}'); only open ones merge"}
        )
    status = Status.objects.filter(is_duplicate=True).first()
    if status is None:
        raise ValidationError(
            {"parent": "no duplicate status is configured (mark one duplicate: true)"}
        )
    if original.pk != parent.pk:
        original = ServiceRequest.objects.select_for_update(of=("self",)).get(pk=original.pk)

    now = timezone.now()
    previous = duplicate.status
    with actor.history_context():
        moved = 0
        for follower in Follower.objects.filter(request=duplicate):
            if _follower_of(original, follower.email, follower.phone):
                follower.delete()  # already follows the original: once is enough
                continue
            follower.request = original
            follower.save(update_fields=["request"])
            moved += 1
        email, phone = _contact(duplicate.reporter_email, duplicate.reporter_phone)
        own = _contact(original.reporter_email, original.reporter_phone)
        reporter_added = False
        is_parents_reporter = (email and email == own[0]) or (phone and phone == own[1])
        if (
            (email or phone)
            and not is_parents_reporter
            and not _follower_of(original, email, phone)
        ):
            Follower.objects.create(
                request=original,
                email=email,
                phone=phone,
                reason=FollowerReason.MERGED_REPORTER,
                created_at=now,
            )
            reporter_added = True
        ServiceRequest.objects.filter(duplicate_of=duplicate).update(duplicate_of=original)
        ServiceRequest.objects.filter(possible_duplicate_of=duplicate).exclude(
            pk=original.pk
        ).update(possible_duplicate_of=original)
        if original.possible_duplicate_of_id == duplicate.pk:
            original.possible_duplicate_of = None
        original.updated_at = now
        original.save(update_fields=["possible_duplicate_of", "updated_at"])

        duplicate.duplicate_of = original
        _status_set(duplicate, status, now)
        duplicate.save(update_fields=["duplicate_of", "status", "closed_at", "updated_at"])
        event = request_event_record(
            request=duplicate,
            kind=EventKind.MERGED,
            actor=actor,
            previous_status=previous,
            note=public_note.strip()
            or f"Already reported as request {original.public_id}: follow that one for updates.",
            internal_note=internal_note.strip(),
            data={"parent": original.public_id},
            at=now,
        )
        request_event_record(
            request=original,
            kind=EventKind.MERGED,
            actor=actor,
            note=f"Request {duplicate.public_id} reported the same problem and was merged here.",
            data={
                "duplicate": duplicate.public_id,
                "followers_moved": moved,
                "reporter_added": reporter_added,
            },
            at=now,
        )
    return event


@transaction.atomic
def request_move(
    *,
    request: ServiceRequest,
    actor: Actor,
    location: Point,
    address: str | None = None,
    public_note: str = "",
    internal_note: str = "",
) -> StatusEvent:
    """Move ``request``'s pin to ``location`` (EPSG:4326) and route it again
    (``geo311.routing``): department, team, rule, matched areas and the expected time of its
    service level follow the new place. A new department takes it unassigned; within the same
    department the team and assignee stay. ``address`` replaces the address when given. The
    old and new place and department are in the event's data.
    """
    request = _locked(request)
    category = (
        ServiceCategory.objects.select_related("default_department")
        .prefetch_related("required_layers", "service_levels")
        .get(pk=request.category_id)
    )
    try:
        routing = route(category=category, point=location)
    except RoutingError as exc:
        raise ValidationError({"location": str(exc)}) from exc
    data = {
        "from": {
            "lon": request.location.x,
            "lat": request.location.y,
            "address": request.address,
            "department": request.department.slug if request.department else None,
            "rule": (request.routing or {}).get("rule"),
        },
        "to": {
            "lon": location.x,
            "lat": location.y,
            "address": request.address if address is None else address,
            "department": routing.department.slug,
            "rule": routing.as_record()["rule"],
        },
    }
    now = timezone.now()
    if routing.department.pk != request.department_id:
        request.team, request.assignee = routing.team, None
    request.department = routing.department
    request.location = location
    if address is not None:
        request.address = address
        request.address_key = normalize_address(address) if address.strip() else ""
    request.routing_rule = routing.rule
    request.routing = routing.as_record()
    request.expected_at = expected_at_for(
        category=category, areas=routing.boundaries, requested_at=request.requested_at
    )
    request.updated_at = now
    with actor.history_context():
        request.save()
        return request_event_record(
            request=request,
            kind=EventKind.MOVED,
            actor=actor,
            note=public_note.strip(),
            internal_note=internal_note.strip(),
            public=bool(public_note.strip()),
            data=data,
            at=now,
        )


_email = EmailValidator()


@transaction.atomic
def request_follow(
    *,
    request: ServiceRequest,
    email: str = "",
    phone: str = "",
    updates: str = FollowerUpdates.ALL,
) -> Follower:
    """Subscribe to ``request``'s progress instead of reporting it again, with an email or a
    phone number (or both). A merged duplicate is followed through its original. Following
    again with a known contact is the same follower, its preferences updated (and subscribed
    again if it had left)."""
    email, phone = _contact(email, phone)
    if not (email or phone):
        raise ValidationError({"email": "give an email address or a phone number"})
    if email:
        try:
            _email(email)
        except ValidationError:
            raise ValidationError({"email": f"not an email address: '{email}'"}) from None
    if phone and not 7 <= len(phone.lstrip("+")) <= 15:
        raise ValidationError({"phone": "a phone number has 7 to 15 digits"})
    if updates not in FollowerUpdates.values:
        raise ValidationError({"updates": f"one of {', '.join(FollowerUpdates.values)}"})
    target = request.duplicate_of or request
    follower = _follower_of(target, email, phone)
    if follower is None:
        try:
            with transaction.atomic():  # a savepoint: the same contact may arrive twice at once
                return Follower.objects.create(
                    request=target,
                    email=email,
                    phone=phone,
                    updates=updates,
                    created_at=timezone.now(),
                )
        except IntegrityError:
            follower = _follower_of(target, email, phone)
            assert follower is not None
    follower.email = follower.email or email
    follower.phone = follower.phone or phone
    follower.updates = updates
    follower.unsubscribed_at = None
    follower.save(update_fields=["email", "phone", "updates", "unsubscribed_at"])
    return follower


@transaction.atomic
def follower_unsubscribe(*, token: str) -> Follower:
    """Stop telling a follower about its request (the link in every message; no account
    needed). Raises Follower.DoesNotExist for an unknown token."""
    follower = Follower.objects.select_for_update().get(token=token)
    if follower.unsubscribed_at is None:
        follower.unsubscribed_at = timezone.now()
        follower.save(update_fields=["unsubscribed_at"])
    return follower


def status_for_update(*, code: str) -> Status:
    """The city status an external system names: its code, in any case, with ``_`` for ``-``
    (FixMyStreet sends IN_PROGRESS). ValidationError naming ``status`` otherwise."""
    wanted = code.strip().lower().replace("_", "-")
    status = Status.objects.filter(code=wanted).first()
    if status is None:
        codes = ", ".join(Status.objects.values_list("code", flat=True))
        raise ValidationError({"status": f"not a status of this city: '{code}' (one of {codes})"})
    return status


@transaction.atomic
def request_update_from_external(
    *,
    request: ServiceRequest,
    api_key: ApiKey,
    update_id: str,
    status: Status | None = None,
    description: str = "",
    media_url: str = "",
) -> StatusEvent:
    """An update posted by an external system (a work-order system): a status change (checked
    against the city's transitions like any other) or, without a new status, a public note.
    ``update_id`` is the system's own id for it: the same id from the same key is refused, so
    a retried post cannot change the request twice. PermissionDenied when the key may not post
    updates, or not for this request's department.
    """
    if not api_key.may_post_updates:
        raise PermissionDenied("this api_key may not post request updates")
    if api_key.department_id and api_key.department_id != request.department_id:
        raise PermissionDenied(f"this api_key posts updates for {api_key.department} requests only")
    update_id = update_id.strip()
    if not update_id:
        raise ValidationError({"update_id": "required: your own id for this update"})
    if StatusEvent.objects.filter(api_key=api_key, external_id=update_id).exists():
        raise ValidationError(
            {"update_id": f"update {update_id} was already accepted; it is not taken twice"}
        )
    actor = Actor(api_key=api_key)
    if status is not None and status.pk != request.status_id:
        return request_transition(
            request=request,
            status=status,
            actor=actor,
            public_note=description,
            photo_url=media_url,
            external_id=update_id,
        )
    return request_note_add(
        request=request,
        actor=actor,
        public_note=description,
        photo_url=media_url,
        external_id=update_id,
    )
