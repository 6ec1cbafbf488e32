"""Staff see every delivery (the delivery log, webhooks included) and every job that used up
its retries, and can send them again."""

import datetime as dt

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.contrib.django.admin import ProcrastinateJobAdmin

from . import services
from .models import (
    AreaSubscription,
    Delivery,
    DeliveryStatus,
    FailedJob,
    ReporterPreference,
    WebhookSubscription,
)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "purpose",
        "recipient",
        "status",
        "attempts",
        "sent_at",
        "short_error",
    ]
    list_filter = ["status", "channel", "purpose", "webhook"]
    search_fields = ["recipient", "key", "provider_id"]
    date_hierarchy = "created_at"
    list_select_related = ["webhook"]
    actions = ["retry"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="last error")
    def short_error(self, delivery: Delivery) -> str:
        return delivery.last_error[:80]

    @admin.action(description="Send the selected failed deliveries again", permissions=["view"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = services.deliveries_retry(deliveries=queryset.filter(status=DeliveryStatus.FAILED))
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)


@admin.register(FailedJob)
class FailedJobAdmin(ProcrastinateJobAdmin):
    """procrastinate's own job admin, narrowed to failed jobs, with a retry button."""

    actions = ["retry"]
    list_filter = ["queue_name", "task_name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(status="failed")

    @admin.action(description="Retry the selected jobs", permissions=["view"])
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        manager = procrastinate_app.job_manager
        ids = list(queryset.values_list("pk", flat=True))
        for job_id in ids:
            manager.retry_job_by_id(job_id=job_id, retry_at=dt.datetime.now(tz=dt.UTC))
        self.message_user(request, f"{len(ids)} jobs queued again.", messages.SUCCESS)


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "event_types", "department", "active", "created_at"]
    list_filter = ["active", "department"]
    search_fields = ["name", "url"]


@admin.register(AreaSubscription)
class AreaSubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "layer",
        "boundary_code",
        "radius_m",
        "frequency",
        "confirmed_at",
        "unsubscribed_at",
    ]
    list_filter = ["frequency", "layer"]
    search_fields = ["email", "boundary_code"]
    filter_horizontal = ["categories"]


@admin.register(ReporterPreference)
class ReporterPreferenceAdmin(admin.ModelAdmin):
    list_display = ["request", "notify", "updated_at"]
    list_filter = ["notify"]
    raw_id_fields = ["request"]
