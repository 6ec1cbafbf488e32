"""The planner page: filters, a map and charts over the analysis API, behind staff login."""

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.generic import TemplateView

from boundaries.models import Layer, LayerKind, VersionStatus
from geo311.models import Department, ServiceCategory, Status


class PlannerView(LoginRequiredMixin, PermissionRequiredMixin, TemplateView):
    """Staff with ``maps.view_reports``: others are sent to log in, or refused (403)."""

    template_name = "maps/planner.html"
    permission_required = "maps.view_reports"
    login_url = reverse_lazy("admin:login")

    def has_permission(self) -> bool:
        return self.request.user.is_staff and super().has_permission()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        today = timezone.localdate()
        layers = (
            Layer.objects.filter(versions__status=VersionStatus.ACTIVE)
            .exclude(kind=LayerKind.JURISDICTION)
            .order_by("slug")
            .distinct()
        )
        context.update(
            categories=ServiceCategory.objects.order_by("group", "name"),
            departments=Department.objects.order_by("name"),
            statuses=Status.objects.order_by("order", "code"),
            layers=layers,
            default_layer="wards" if layers.filter(slug="wards").exists() else "",
            default_from=today.replace(year=today.year - 1).isoformat(),
            default_to=today.isoformat(),
        )
        return context
