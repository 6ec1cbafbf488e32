"""Admin: the analysis runs (read-only: they are made by asking the API or the command) and
the denominators."""

from django.contrib import admin
from django.http import HttpRequest

from .models import AnalysisRun, Denominator


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "status", "progress", "created_at", "finished_at", "created_by"]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in AnalysisRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Denominator)
class DenominatorAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "unit", "source", "loaded_at"]
    readonly_fields = ["loaded_at"]
