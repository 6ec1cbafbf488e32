"""What geo311 tells whom, and what it sent.

- ``Delivery``: one message to one recipient on one channel, for one event (or one digest). Its
  ``key`` (event × recipient × channel) is unique: a retried job finds the row and does not
  send again. It is the delivery log staff read in the admin.
- ``ReporterPreference``: how a reporter wants to hear about their request (email, SMS, both,
  none); without a row, by email when they gave one.
- ``WebhookSubscription``: another city system told of events by signed JSON POSTs.
- ``AreaSubscription``: anyone told of new reports in a boundary or within a radius of a point,
  at once or in a daily digest.

Writes go through ``geo311.notifications.services``. Points are WGS84.
"""

import secrets

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q
from procrastinate.contrib.django.models import ProcrastinateJob

from boundaries.models import Layer
from geo311.models import Department, EventKind, ServiceCategory, ServiceRequest, StatusEvent


class Notify(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    BOTH = "both", "Email and SMS"
    NONE = "none", "No messages"


class ReporterPreference(models.Model):
    """How the reporter of ``request`` is told of its progress. Absent: by email when they gave
    an email; SMS only when they asked for it (texting needs the person's consent)."""

    request = models.OneToOneField(
        ServiceRequest,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    notify = models.CharField(max_length=5, choices=Notify.choices)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.request_id}: {self.notify}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WEBHOOK = "webhook", "Webhook"


class Purpose(models.TextChoices):
    CONFIRMATION = "confirmation", "Confirmation of a new report"
    UPDATE = "update", "Status change or public note"
    COMPLETED = "completed", "Closed (job done)"
    MERGED = "merged", "Merged into another request"
    AREA_ALERT = "area-alert", "Area alert"
    AREA_DIGEST = "area-digest", "Area alert daily digest"
    AREA_CONFIRM = "area-confirm", "Area alert: confirm the subscription"
    STAFF_ASSIGNED = "staff-assigned", "Staff: new assignment"
    OVERDUE_DIGEST = "overdue-digest", "Managers: overdue digest"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One message to one recipient on one channel. ``content`` is the message as rendered
    when it was queued (email: subject, text, html; SMS: body; webhook: the JSON payload), so a
    retry sends the same bytes and staff can read what was sent."""

    key = models.CharField(
        max_length=64, unique=True, help_text="idempotency key: event × recipient × channel"
    )
    event = models.ForeignKey(
        StatusEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    recipient = models.CharField(max_length=1000, help_text="email address, phone or URL")
    webhook = models.ForeignKey(
        "WebhookSubscription",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_index=False,
    )
    content = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Email: the Message-ID; SMS: the provider's message id; webhook: the HTTP status.
    provider_id = models.CharField(max_length=200, blank=True)
    response = models.TextField(blank=True, help_text="webhooks: the start of the answer")
    created_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["event"], name="delivery_event"),
            models.Index(fields=["webhook", "created_at"], name="delivery_webhook"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.purpose} to {self.recipient} ({self.status})"


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookSubscription(models.Model):
    """A city system (work orders, permits) told of request events: a JSON POST to ``url``,
    signed with HMAC-SHA256 of ``secret`` (header ``X-Geo311-Signature: t=<unix time>,v1=<hex>``
    over ``<t>.<body>``), retried with backoff until it answers 2xx."""

    name = models.CharField(max_length=200)
    url = models.URLField(max_length=1000)
    secret = models.CharField(max_length=100, default=_new_secret)
    event_types = ArrayField(
        models.CharField(max_length=10, choices=EventKind.choices),
        blank=True,
        default=list,
        help_text="the event kinds it wants; empty: all of them",
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="only this department's requests (staff alerts)",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Frequency(models.TextChoices):
    IMMEDIATE = "immediate", "At once"
    DAILY = "daily", "Daily digest (at most one email a day)"


class AreaSubscription(models.Model):
    """New reports in a boundary (a layer and a code: it follows the layer's active version) or
    within ``radius_m`` metres of ``center``, of some categories (none: all), to ``email``, at
    once or in a daily digest. Starts unconfirmed: the first email asks to confirm."""

    email = models.EmailField()
    layer = models.ForeignKey(Layer, null=True, blank=True, on_delete=models.CASCADE)
    boundary_code = models.CharField(max_length=100, blank=True)
    # geography: ST_DWithin in metres on the sphere.
    center = models.PointField(srid=4326, geography=True, null=True, blank=True)
    radius_m = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(10), MaxValueValidator(10_000)]
    )
    categories = models.ManyToManyField(ServiceCategory, blank=True, related_name="+")
    frequency = models.CharField(
        max_length=10, choices=Frequency.choices, default=Frequency.IMMEDIATE
    )
    language = models.CharField(max_length=10, default=settings.LANGUAGE_CODE)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # The digest covers reports filed after this (the previous digest's time).
    digest_through = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(layer__isnull=False, center__isnull=True, radius_m__isnull=True)
                    & ~Q(boundary_code="")
                )
                | Q(layer__isnull=True, boundary_code="", center__isnull=False, radius_m__gt=0),
                name="areasubscription_boundary_or_circle",
            ),
        ]
        indexes = [
            models.Index(
                fields=["layer", "boundary_code"],
                condition=Q(layer__isnull=False),
                name="areasubscription_boundary",
            ),
        ]

    def __str__(self) -> str:
        where = f"{self.layer_id}:{self.boundary_code}" if self.layer_id else f"{self.radius_m} m"
        return f"{self.email} ({where}, {self.frequency})"

    @property
    def active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None


class FailedJob(ProcrastinateJob):
    """Jobs that used up their retries (procrastinate's table, read-only): the admin lists them
    with a retry action, so nothing fails silently."""

    class Meta:
        proxy = True
        verbose_name = "failed job"
