from django.contrib import admin, messages
from django.contrib.gis.admin import GISModelAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Boundary, Layer, LayerVersion
from .widgets import LocalOSMWidget


class LayerVersionInline(admin.TabularInline):
    model = LayerVersion
    fields = (
        "number",
        "status",
        "source_name",
        "source_crs",
        "feature_count",
        "effective_from",
        "effective_to",
        "imported_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    inlines = [LayerVersionInline]


@admin.action(description="Activate the selected version (retires the current one)")
def activate_versions(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[LayerVersion]
) -> None:
    layers = list(queryset.values_list("layer_id", flat=True))
    if len(layers) != len(set(layers)):
        modeladmin.message_user(
            request, "Choose at most one version per layer.", level=messages.ERROR
        )
        return
    for version in queryset:
        services.layer_version_activate(version=version)
        modeladmin.message_user(request, f"{version.layer.slug} v{version.number} is active.")


@admin.register(LayerVersion)
class LayerVersionAdmin(admin.ModelAdmin):
    list_display = [
        "layer",
        "number",
        "status",
        "source_name",
        "feature_count",
        "vertex_count",
        "effective_from",
        "effective_to",
        "imported_at",
    ]
    list_filter = ["status", "layer"]
    list_select_related = ["layer"]
    actions = [activate_versions]
    readonly_fields = [f.name for f in LayerVersion._meta.fields if f.name != "effective_from"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from imports


@admin.register(Boundary)
class BoundaryAdmin(GISModelAdmin):
    gis_widget = LocalOSMWidget  # type: ignore[assignment]  # stubs type it as an instance
    list_display = ["code", "name", "version"]
    list_filter = ["version__layer", "version__status"]
    list_select_related = ["version__layer"]
    search_fields = ["code", "name"]
    readonly_fields = ["version", "attributes"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Boundary]:
        return super().get_queryset(request).defer("geom")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Boundary, form: object, change: bool) -> None:
        # An edited polygon needs its lookup pieces rebuilt, which save() alone does not do.
        services.boundary_save(boundary=obj)
