"""Admin for the city's configuration (loaded from YAML, editable here) and its requests."""

import json

from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from boundaries.widgets import LocalOSMWidget

from .models import (
    ApiKey,
    AttributeValue,
    Department,
    Follower,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceLevel,
    ServiceRequest,
    StaffProfile,
    Status,
    StatusEvent,
    StatusTransition,
    Team,
)


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "email", "phone"]
    search_fields = ["name", "slug"]
    inlines = [TeamInline]


class ServiceAttributeInline(admin.StackedInline):
    model = ServiceAttribute
    extra = 0
    show_change_link = True  # values are edited on the attribute's own page


class ServiceLevelInline(admin.TabularInline):
    model = ServiceLevel
    extra = 0


@admin.register(ServiceCategory)
class ServiceCategoryAdmin(admin.ModelAdmin):
    list_display = ["service_code", "name", "group", "type", "default_department", "active"]
    list_filter = ["group", "type", "active", "default_department"]
    list_select_related = ["default_department"]
    search_fields = ["service_code", "name", "keywords"]
    filter_horizontal = ["required_layers"]
    inlines = [ServiceLevelInline, ServiceAttributeInline]


class AttributeValueInline(admin.TabularInline):
    model = AttributeValue
    extra = 1


@admin.register(ServiceAttribute)
class ServiceAttributeAdmin(admin.ModelAdmin):
    list_display = ["category", "order", "code", "datatype", "required"]
    list_filter = ["datatype", "required"]
    list_select_related = ["category"]
    inlines = [AttributeValueInline]


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "priority", "team", "note"]
    list_filter = ["department", "layer", "group"]
    list_select_related = ["category", "layer", "department", "team"]
    autocomplete_fields = ["category", "department"]


class TransitionInline(admin.TabularInline):
    model = StatusTransition
    fk_name = "from_status"
    extra = 0
    verbose_name = "may change to"
    verbose_name_plural = "may change to (the city's transitions)"


@admin.register(Status)
class StatusAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "open311_status", "is_initial", "is_duplicate", "order"]
    list_editable = ["order"]
    inlines = [TransitionInline]


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    extra = 0
    fields = (
        "created_at",
        "kind",
        "status",
        "note",
        "internal_note",
        "photo_url",
        "public",
        "actor",
    )
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # status changes go through the lifecycle services


class FollowerInline(admin.TabularInline):
    model = Follower
    extra = 0
    fields = ("email", "phone", "updates", "reason", "created_at", "unsubscribed_at")
    readonly_fields = ("reason", "created_at")


@admin.register(ServiceRequest)
class ServiceRequestAdmin(GISModelAdmin):
    gis_widget = LocalOSMWidget  # type: ignore[assignment]  # stubs type it as an instance
    list_display = ["public_id", "category", "status", "department", "address", "requested_at"]
    list_filter = [
        "status",
        "channel",
        "department",
        "category__group",
        ("possible_duplicate_of", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["category", "status", "department"]
    search_fields = ["public_id", "address", "description"]
    date_hierarchy = "requested_at"
    readonly_fields = [
        "public_id",
        "token",
        "routing_rule",
        "why_routed",
        "requested_at",
        "duplicate_score",
        "duplicate_reasons",
        "duplicate_of",
        # Status changes are checked against the city's transitions and recorded as events:
        # the staff API does them (geo311.services.request_transition), not this form.
        "status",
        "closed_at",
    ]
    # Staff confirm or clear the link; an id box, not a list of every request. Merges go
    # through the staff API (they move followers and close the duplicate): read-only here.
    raw_id_fields = ["possible_duplicate_of", "assignee", "filed_by"]
    exclude = ["routing"]
    inlines = [StatusEventInline, FollowerInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServiceRequest]:
        return super().get_queryset(request).defer("attributes", "routing")

    @admin.display(description="Why it went here")
    def why_routed(self, obj: ServiceRequest) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.routing, indent=2))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "contact", "active", "may_post_updates", "department", "last_used_at"]
    list_filter = ["active", "may_post_updates"]
    readonly_fields = ["created_at", "last_used_at"]
    search_fields = ["name", "contact"]


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "department", "team"]
    list_filter = ["department"]
    list_select_related = ["user", "department", "team"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]
