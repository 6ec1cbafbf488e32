"""The service-request domain: departments, service categories (Open311 services) with their
questions, routing rules, statuses and the transitions between them, service levels, requests
and their history, followers, staff profiles, addresses and API keys.

Writes go through ``geo311.services``; reads through ``geo311.selectors``. Geometries are WGS84.

Audit: requests and the configuration staff edit are tracked by django-pghistory triggers
(``audited`` below), so bulk SQL updates are caught too; ``geo311.selectors.history_of`` reads
them as who/when/field/before/after.
"""

import secrets
import time
from collections.abc import Callable
from typing import TypeVar

import pghistory
import pgtrigger
from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.indexes import GistIndex
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db.models import F, Func, Q, UniqueConstraint, Value
from django.db.models.functions import Cast

from boundaries.models import Layer

M = TypeVar("M", bound=models.Model)


def audited(
    *, insert: bool = True, exclude_from_condition: tuple[str, ...] = ()
) -> Callable[[type[M]], type[M]]:
    """Track a model's changes with database triggers (django-pghistory) in ``<Model>History``:
    each update and delete stores the row as it was *before* the change, with the pghistory
    context (who, from where). A change's before/after are its snapshot and the next one (or the
    live row); ``geo311.selectors.history_of`` reads them so.

    ``insert`` also stores new rows as they were inserted (configuration: "who added this
    rule"). Requests leave it off: their first status event records the creation, and an insert
    trigger would cost every POST and every imported row. ``exclude_from_condition`` names
    columns whose change alone is not worth an event (derived or bookkeeping columns; they are
    still in the snapshots).
    """
    # Statement-level: one trigger call per statement, reading the changed rows from its
    # transition tables. pghistory's default row-level triggers call _pgh_attach_context() for
    # each row, and its EXCEPTION block opens (and, without a context, aborts) a subtransaction
    # each time; with the deferred foreign-key checks of a bulk INSERT queued, each abort costs
    # more than the last: 5,000 rows took 3.8 s against 1.3 s, and 74,401 had not finished
    # after 11 minutes (bench/audit_triggers.py).
    level = pgtrigger.Statement
    trackers: list[pghistory.Tracker] = [
        pghistory.UpdateEvent(
            "update",
            row=pghistory.Old,
            condition=pghistory.AnyChange(exclude=list(exclude_from_condition)),
            level=level,
        ),
        pghistory.DeleteEvent("delete", level=level),
    ]
    if insert:
        trackers.insert(0, pghistory.InsertEvent("insert", level=level))

    def track(model: type[M]) -> type[M]:
        # Not pghistory's default "<Model>Event" and ".events": StatusEvent and
        # ServiceRequest.events are taken.
        return pghistory.track(
            *trackers,
            model_name=f"{model.__name__}History",
            obj_field=pghistory.ObjForeignKey(
                related_name="history", related_query_name="+", db_index=True
            ),
        )(model)

    return track


@audited()
class Department(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)
    url = models.URLField(blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@audited()
class Team(models.Model):
    """A crew or unit inside a department (e.g. "Ward 42 street crew")."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="teams")
    slug = models.SlugField()
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [UniqueConstraint(fields=["department", "slug"], name="team_unique_slug")]

    def __str__(self) -> str:
        return f"{self.department.name}: {self.name}"


class ServiceType(models.TextChoices):
    REALTIME = "realtime", "realtime"
    BATCH = "batch", "batch"
    BLACKBOX = "blackbox", "blackbox"


@audited()
class ServiceCategory(models.Model):
    """An Open311 service: what a resident can report."""

    service_code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    group = models.CharField(max_length=100, blank=True, db_index=True)
    keywords = models.CharField(max_length=500, blank=True, help_text="comma-separated")
    type = models.CharField(
        max_length=16, choices=ServiceType.choices, default=ServiceType.REALTIME
    )
    default_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="default_for"
    )
    required_layers = models.ManyToManyField(
        Layer,
        blank=True,
        related_name="required_by",
        help_text="A point outside every boundary of one of these layers is refused",
    )
    active = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)
    sensitive = models.BooleanField(
        default=False,
        help_text="Public outputs (maps, tiles, feeds, Open311) show these requests only at the "
        "centre of a GEO311_SENSITIVE_GRID_M grid cell; the exact point is for staff",
    )
    # Duplicate detection (geo311.duplicates); blank takes the GEO311_DUPLICATE_* setting.
    duplicate_radius_m = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5000)],
        help_text="earlier requests this close (metres) are duplicate candidates",
    )
    duplicate_window_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="... when made at most this many days before",
    )
    duplicate_likely_score = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="a new request whose best candidate scores this (0-1) or more is linked to it "
        "as a possible duplicate for staff to check",
    )

    class Meta:
        ordering = ["order", "service_code"]
        verbose_name_plural = "service categories"

    def __str__(self) -> str:
        return f"{self.name} ({self.service_code})"


class Datatype(models.TextChoices):
    STRING = "string", "string"
    NUMBER = "number", "number"
    DATETIME = "datetime", "datetime"
    TEXT = "text", "text"
    SINGLEVALUELIST = "singlevaluelist", "singlevaluelist"
    MULTIVALUELIST = "multivaluelist", "multivaluelist"


@audited()
class ServiceAttribute(models.Model):
    """A question of a service definition (an Open311 attribute)."""

    category = models.ForeignKey(
        ServiceCategory, on_delete=models.CASCADE, related_name="attributes"
    )
    code = models.CharField(max_length=64)
    variable = models.BooleanField(default=True, help_text="False: information only, no answer")
    datatype = models.CharField(max_length=20, choices=Datatype.choices)
    required = models.BooleanField(default=False)
    datatype_description = models.CharField(max_length=300, blank=True)
    order = models.PositiveIntegerField()
    description = models.TextField(help_text="The question as shown to the resident")

    class Meta:
        ordering = ["category", "order"]
        constraints = [
            UniqueConstraint(fields=["category", "code"], name="attribute_unique_code"),
            UniqueConstraint(fields=["category", "order"], name="attribute_unique_order"),
        ]

    def __str__(self) -> str:
        return f"{self.category.service_code}/{self.code}"


@audited()
class AttributeValue(models.Model):
    attribute = models.ForeignKey(ServiceAttribute, on_delete=models.CASCADE, related_name="values")
    key = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attribute", "order", "key"]
        constraints = [
            UniqueConstraint(fields=["attribute", "key"], name="attributevalue_unique_key"),
        ]

    def __str__(self) -> str:
        return self.name


@audited()
class RoutingRule(models.Model):
    """(category | category group | any) × (layer [× boundary code]) → department.

    The most specific matching rule wins: a rule for the category beats one for its group, which
    beats one for any category; at the same level a rule naming a boundary code beats one naming
    only the layer, which beats one naming no place. ``priority`` breaks remaining ties (higher
    wins). With no matching rule the category's default department serves the request.
    """

    category = models.ForeignKey(
        ServiceCategory, null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    group = models.CharField(max_length=100, blank=True, help_text="category group, if no category")
    layer = models.ForeignKey(Layer, null=True, blank=True, on_delete=models.CASCADE)
    boundary_code = models.CharField(max_length=100, blank=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="rules")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    priority = models.IntegerField(default=0)
    note = models.CharField(max_length=300, blank=True, help_text="why this rule exists")

    class Meta:
        ordering = ["-priority", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~(Q(category__isnull=False) & ~Q(group="")),
                name="routingrule_category_or_group",
            ),
            models.CheckConstraint(
                condition=Q(boundary_code="") | Q(layer__isnull=False),
                name="routingrule_code_needs_layer",
            ),
        ]

    def __str__(self) -> str:
        return self.describe()

    @property
    def specificity(self) -> int:
        target = 2 if self.category_id else 1 if self.group else 0
        place = 2 if self.boundary_code else 1 if self.layer_id else 0
        return target * 3 + place

    def describe(self) -> str:
        what = (
            f"category {self.category.service_code}"
            if self.category_id and self.category
            else f"group {self.group}"
            if self.group
            else "any category"
        )
        where = ""
        if self.layer_id and self.layer:
            code = f" {self.boundary_code}" if self.boundary_code else ""
            where = f" in {self.layer.slug}{code}"
        return f"{what}{where} → {self.department.name if self.department_id else '?'}"


@audited()
class Status(models.Model):
    """One of the city's request statuses, each mapped to Open311 open or closed."""

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    open311_status = models.CharField(
        max_length=6, choices=[("open", "open"), ("closed", "closed")]
    )
    is_initial = models.BooleanField(default=False, help_text="given to new requests")
    is_duplicate = models.BooleanField(
        default=False,
        help_text="given to a request merged into another (only a merge gives it; a closed status)",
    )
    description = models.CharField(max_length=300, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "code"]
        verbose_name_plural = "statuses"
        constraints = [
            UniqueConstraint(
                fields=["is_initial"], condition=Q(is_initial=True), name="status_one_initial"
            ),
            UniqueConstraint(
                fields=["is_duplicate"],
                condition=Q(is_duplicate=True),
                name="status_one_duplicate",
            ),
            models.CheckConstraint(
                condition=Q(is_duplicate=False) | Q(open311_status="closed"),
                name="status_duplicate_is_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.open311_status})"


@audited()
class StatusTransition(models.Model):
    """A status change staff (or an external system) may make. Only the listed changes are
    allowed: "completed" straight from "submitted" only if the city lists it."""

    from_status = models.ForeignKey(Status, on_delete=models.CASCADE, related_name="+")
    to_status = models.ForeignKey(Status, on_delete=models.CASCADE, related_name="+")
    note_required = models.BooleanField(
        default=False, help_text="the change needs a public note (e.g. why it was rejected)"
    )

    class Meta:
        ordering = ["from_status__order", "to_status__order"]
        constraints = [
            UniqueConstraint(fields=["from_status", "to_status"], name="transition_unique"),
            models.CheckConstraint(
                condition=~Q(from_status=F("to_status")), name="transition_changes_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_status_id} → {self.to_status_id}"


@audited()
class ServiceLevel(models.Model):
    """How long a category's requests should take to close (Open311 ``expected_datetime`` is
    the request time plus ``hours``), for the whole city or for one boundary (a zone) of a
    layer. The zone's level wins over the city-wide one; of several matching zones, the
    shortest."""

    category = models.ForeignKey(
        ServiceCategory, on_delete=models.CASCADE, related_name="service_levels"
    )
    layer = models.ForeignKey(Layer, null=True, blank=True, on_delete=models.CASCADE)
    boundary_code = models.CharField(max_length=100, blank=True)
    hours = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="calendar hours from the request"
    )
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["category", "layer", "boundary_code"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(layer__isnull=True) & Q(boundary_code=""))
                | (Q(layer__isnull=False) & ~Q(boundary_code="")),
                name="servicelevel_zone_is_layer_and_code",
            ),
            UniqueConstraint(
                fields=["category"],
                condition=Q(layer__isnull=True),
                name="servicelevel_one_citywide",
            ),
            UniqueConstraint(
                fields=["category", "layer", "boundary_code"],
                condition=Q(layer__isnull=False),
                name="servicelevel_one_per_zone",
            ),
        ]

    def __str__(self) -> str:
        where = f" in {self.layer_id}:{self.boundary_code}" if self.layer_id else ""
        return f"{self.category_id}{where}: {self.hours} h"


class Channel(models.TextChoices):
    WEB = "web", "Web"
    MOBILE = "mobile", "Mobile web"
    API = "api", "App / API"
    PHONE = "phone", "Phone"
    IMPORT = "import", "Imported history"


def _next_public_id() -> Func:
    return Cast(Func(Value("geo311_request_public_id"), function="nextval"), models.TextField())


def _new_token() -> str:
    """A batch request's token: 128 random bits, after the time in milliseconds, so that new
    tokens sort last and their unique index grows at its right edge instead of touching a random
    page of a large index for every request."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_urlsafe(16)}"


# address_key is derived from address (filled in bulk after imports); updated_at moves with
# every real change anyway.
@audited(insert=False, exclude_from_condition=("address_key",))
class ServiceRequest(models.Model):
    # The unique ids are constraints (see Meta), not unique=True: on PostgreSQL a unique
    # CharField gets a second, varchar_pattern_ops index for LIKE 'prefix%', which no query
    # here makes, and every request would write both.
    public_id = models.CharField(
        max_length=64,
        db_default=_next_public_id(),
        editable=False,
        help_text="Open311 service_request_id",
    )
    token = models.CharField(max_length=64, default=_new_token)
    # No index of its own for category or status: the (category, requested_at) and
    # (status, requested_at) indexes below serve every lookup by either; department is indexed
    # with requested_at below (the department queue), not alone.
    category = models.ForeignKey(
        ServiceCategory, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        db_index=False,
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )  # a partial index in Meta
    status = models.ForeignKey(Status, on_delete=models.PROTECT, related_name="+", db_index=False)
    location = models.PointField(srid=4326)
    address = models.CharField(max_length=300, blank=True)
    # The street line in its normal form (geo311.addresses.normalize_address): what duplicate
    # detection compares, so "1600 West North Avenue" and "1600 W NORTH AVE" are one address.
    # A database default too, so bulk INSERTs that do not name it (the importer's) still work.
    address_key = models.CharField(max_length=300, blank=True, editable=False, db_default="")
    address_id = models.CharField(max_length=100, blank=True)
    zipcode = models.CharField(max_length=20, blank=True)
    description = models.TextField(blank=True, validators=[MaxLengthValidator(4000)])
    attributes = models.JSONField(default=dict, blank=True, help_text="answers by attribute code")
    media_url = models.URLField(max_length=1000, blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.API)
    service_notice = models.CharField(max_length=500, blank=True)
    # Reporter contact: private, never in public output.
    reporter_first_name = models.CharField(max_length=100, blank=True)
    reporter_last_name = models.CharField(max_length=100, blank=True)
    reporter_email = models.EmailField(blank=True)
    reporter_phone = models.CharField(max_length=50, blank=True)
    reporter_device_id = models.CharField(max_length=200, blank=True)
    reporter_account_id = models.CharField(max_length=200, blank=True)
    # Why it went where it went: the rule and the areas matched, frozen at routing time.
    routing_rule = models.ForeignKey(
        RoutingRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )  # a partial index in Meta
    routing = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(db_index=True)
    expected_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=100, blank=True, help_text="import file, for history")
    # Set when the request came in looking like an earlier one (geo311.duplicates): a link for
    # staff to confirm or clear, never a merge.
    possible_duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="possible_duplicates",
        db_index=False,
    )  # a partial index in Meta
    duplicate_score = models.FloatField(null=True, blank=True)
    duplicate_reasons = models.JSONField(
        default=list, blank=True, db_default=Value([], output_field=models.JSONField())
    )
    # Set by a staff merge (Open311 parent_service_request_id): this request repeats that one,
    # which now carries its followers and reporter; this one is closed with the duplicate
    # status. Always points at an original (a request that is not itself merged).
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="duplicates",
        db_index=False,
    )
    # Who works on it: a crew member of the department (the team is the routing's or the
    # assigner's choice).
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_requests",
        db_index=False,
    )
    # The signed-in user who filed it (a call-taker for a caller, or a resident's account).
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="filed_requests",
        db_index=False,
    )

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            UniqueConstraint(fields=["public_id"], name="servicerequest_unique_public_id"),
            UniqueConstraint(fields=["token"], name="servicerequest_unique_token"),
        ]
        indexes = [
            # Mostly NULL (imported history has none): partial, so bulk imports skip them.
            models.Index(
                fields=["duplicate_of"],
                condition=Q(duplicate_of__isnull=False),
                name="servicerequest_duplicate_of",
            ),
            models.Index(
                fields=["assignee", "requested_at"],
                condition=Q(assignee__isnull=False),
                name="servicerequest_assignee",
            ),
            models.Index(
                fields=["filed_by", "requested_at"],
                condition=Q(filed_by__isnull=False),
                name="servicerequest_filed_by",
            ),
            # The department queue: a department's requests, newest first (also serves the
            # department foreign key, which has no index of its own).
            models.Index(fields=["department", "requested_at"], name="servicerequest_dept_time"),
            models.Index(fields=["category", "requested_at"]),
            models.Index(fields=["status", "requested_at"]),
            # Mostly empty links (most requests have no team, no duplicate, ...): only the rows
            # that have one are indexed, for the lookups that follow them (SET NULL on delete,
            # a team's queue, a request's possible duplicates).
            models.Index(
                fields=["team"], condition=Q(team__isnull=False), name="servicerequest_team"
            ),
            models.Index(
                fields=["routing_rule"],
                condition=Q(routing_rule__isnull=False),
                name="servicerequest_routing_rule",
            ),
            models.Index(
                fields=["possible_duplicate_of"],
                condition=Q(possible_duplicate_of__isnull=False),
                name="servicerequest_possible_dup",
            ),
            # Duplicate candidates: ST_DWithin on the geography (metres) within a time window.
            # One GiST index on both (btree_gist) answers the two at once; on the geography
            # alone, the planner ANDs it with the (category, requested_at) btree and reads a
            # whole month of the category to keep a dozen rows.
            GistIndex(
                Cast("location", models.PointField(geography=True, srid=4326)),
                F("requested_at"),
                name="servicerequest_geog_time_gist",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.category_id}"


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    STATUS = "status", "Status changed"
    ASSIGNED = "assigned", "Assigned"
    NOTE = "note", "Note"
    MERGED = "merged", "Merged"
    MOVED = "moved", "Location moved"


class StatusEvent(models.Model):
    """One step of a request's history (its first event is its creation): every change a
    resident or staff would be told about is one of these, written by
    ``geo311.services.request_event_record``.

    ``status`` is the request's status after the event; ``note`` is public (when ``public``),
    ``internal_note`` is for staff only. Columns added after the first release have database
    defaults, so bulk INSERTs that do not name them (the request importer's) still work.
    """

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="events")
    status = models.ForeignKey(Status, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(
        max_length=10, choices=EventKind.choices, default=EventKind.STATUS, db_default="status"
    )
    previous_status = models.ForeignKey(
        Status, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    note = models.TextField(blank=True)
    internal_note = models.TextField(blank=True, db_default="")
    photo_url = models.URLField(max_length=1000, blank=True, db_default="")
    public = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    # Who: a name for display ("geo311", a user name, "api key: Work orders"), and the user.
    actor = models.CharField(max_length=200, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # What else changed (assignment, merge partner, old and new place), for staff and
    # notifications; never shown publicly as such.
    data = models.JSONField(
        default=dict, blank=True, db_default=Value({}, output_field=models.JSONField())
    )
    # An update posted by an external system (Open311 POST servicerequestupdates): its own id,
    # accepted once per key.
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    external_id = models.CharField(max_length=100, blank=True, db_default="")

    class Meta:
        ordering = ["request", "created_at", "pk"]
        constraints = [
            UniqueConstraint(
                fields=["api_key", "external_id"],
                condition=~Q(external_id=""),
                name="statusevent_external_id_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.kind} {self.status_id}"


class FollowerUpdates(models.TextChoices):
    ALL = "all", "Every public update"
    CLOSED = "closed", "Only when it is closed"


class FollowerReason(models.TextChoices):
    FOLLOWED = "followed", "Followed it instead of reporting again"
    MERGED_REPORTER = "merged-reporter", "Reported a duplicate merged into it"


def _new_follower_token() -> str:
    return secrets.token_urlsafe(24)


@audited(insert=False)
class Follower(models.Model):
    """Someone told about a request's progress who did not file it: a resident who followed it
    instead of reporting again, or the reporter (or follower) of a duplicate merged into it.

    Private: only the number of active followers is public. ``token`` identifies the follower in
    unsubscribe links, without an account.
    """

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="followers")
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)
    updates = models.CharField(
        max_length=10, choices=FollowerUpdates.choices, default=FollowerUpdates.ALL
    )
    reason = models.CharField(
        max_length=20, choices=FollowerReason.choices, default=FollowerReason.FOLLOWED
    )
    token = models.CharField(max_length=64, unique=True, default=_new_follower_token)
    created_at = models.DateTimeField()
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(email="") | ~Q(phone=""), name="follower_has_contact"
            ),
            UniqueConstraint(
                fields=["request", "email"], condition=~Q(email=""), name="follower_unique_email"
            ),
            UniqueConstraint(
                fields=["request", "phone"], condition=~Q(phone=""), name="follower_unique_phone"
            ),
        ]

    def __str__(self) -> str:
        return f"follower {self.pk} of {self.request_id}"

    @property
    def active(self) -> bool:
        return self.unsubscribed_at is None


@audited()
class StaffProfile(models.Model):
    """Where a staff user works: their department (and crew team). The role is the user's
    group (``geo311.roles``); managers and call-takers need no department."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="staff"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    phone = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.department_id or '-'}"


class AddressPoint(models.Model):
    """A street address with its point, from the city's address layer.

    ``normalized`` is the matching key (see ``geo311.addresses.normalize_address``).
    """

    address_id = models.CharField(max_length=100, blank=True, db_index=True)
    address = models.CharField(max_length=300, help_text="as displayed")
    normalized = models.CharField(max_length=300, db_index=True)
    zipcode = models.CharField(max_length=20, blank=True)
    location = models.PointField(srid=4326)
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["normalized"]

    def __str__(self) -> str:
        return self.address


def _new_api_key() -> str:
    return secrets.token_urlsafe(24)


# last_used_at is bookkeeping, written at most once a minute per key.
@audited(exclude_from_condition=("last_used_at",))
class ApiKey(models.Model):
    """An Open311 api_key given to a client application."""

    key = models.CharField(max_length=64, unique=True, default=_new_api_key)
    name = models.CharField(max_length=200, help_text="who uses it")
    contact = models.EmailField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # An external system (a work-order system) that reports progress: POST
    # servicerequestupdates, limited to one department's requests when set.
    may_post_updates = models.BooleanField(
        default=False, help_text="may post request updates (status changes and notes)"
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="its updates are limited to this department's requests",
    )

    def __str__(self) -> str:
        return self.name
