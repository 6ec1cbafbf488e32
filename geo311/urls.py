from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from maps.views import PlannerView


def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database readiness for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/boundaries/", include("boundaries.urls")),
    path("api/v1/requests/", include("geo311.api_urls")),
    path("api/v1/staff/", include("geo311.staff_urls")),
    path("open311/v2/", include("geo311.open311.urls")),
    path("api/v1/analysis/", include("maps.urls")),
    path("planner/", PlannerView.as_view(), name="planner"),
    path("tiles/", include("maps.tile_urls")),
    path("", include("geo311.notifications.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("health", health, name="health"),
]
