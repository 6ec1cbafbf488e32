"""The service-request domain: departments, service categories (Open311 services) with their
questions, routing rules, statuses, requests and their history, addresses and API keys.

Writes go through ``geo311.services``; reads through ``geo311.selectors``. Geometries are WGS84.
"""

import secrets
import time

from django.contrib.gis.db import models
from django.contrib.postgres.indexes import GistIndex
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db.models import F, Func, Q, UniqueConstraint, Value
from django.db.models.functions import Cast

from boundaries.models import Layer


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


class Status(models.Model):
    """One of the city's request statuses, each mapped to Open311 open or closed."""

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    open311_status = models.CharField(
        max_length=6, choices=[("open", "open"), ("closed", "closed")]
    )
    is_initial = models.BooleanField(default=False, help_text="given to new requests")
    description = models.CharField(max_length=300, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "code"]
        verbose_name_plural = "statuses"
        constraints = [
            UniqueConstraint(
                fields=["is_initial"], condition=Q(is_initial=True), name="status_one_initial"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.open311_status})"


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
    # (status, requested_at) indexes below serve every lookup by either.
    category = models.ForeignKey(
        ServiceCategory, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
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
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
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
    )
    duplicate_score = models.FloatField(null=True, blank=True)
    duplicate_reasons = models.JSONField(
        default=list, blank=True, db_default=Value([], output_field=models.JSONField())
    )

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            UniqueConstraint(fields=["public_id"], name="servicerequest_unique_public_id"),
            UniqueConstraint(fields=["token"], name="servicerequest_unique_token"),
        ]
        indexes = [
            models.Index(fields=["category", "requested_at"]),
            models.Index(fields=["status", "requested_at"]),
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


class StatusEvent(models.Model):
    """One step of a request's history (its first event is its creation)."""

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="events")
    status = models.ForeignKey(Status, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    public = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["request", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.status_id}"


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


class ApiKey(models.Model):
    """An Open311 api_key given to a client application."""

    key = models.CharField(max_length=64, unique=True, default=_new_api_key)
    name = models.CharField(max_length=200, help_text="who uses it")
    contact = models.EmailField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
