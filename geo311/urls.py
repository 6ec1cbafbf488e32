from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import include, path, re_path
from django.views.static import serve as static_serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from maps.feature_urls import layer_urlpatterns, ogc_urlpatterns
from maps.views import PlannerView


def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database readiness for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Uploaded photos from MEDIA_ROOT, when no web server or bucket serves them."""
    return static_serve(request, path, document_root=settings.MEDIA_ROOT)


# The busiest prefixes first: a path is matched against each pattern in turn.
urlpatterns = [
    path("tiles/", include("maps.tile_urls")),
    path("api/v1/requests/", include("geo311.api_urls")),
    path("open311/v2/", include("geo311.open311.urls")),
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/boundaries/", include("boundaries.urls")),
    path("api/v1/staff/", include("geo311.staff_urls")),
    path("api/v1/analysis/", include("maps.urls")),
    path("api/v1/layers/", include(layer_urlpatterns)),
    path("ogc/", include(ogc_urlpatterns)),
    path("planner/", PlannerView.as_view(), name="planner"),
    path("staff/", include("geo311.staffweb.urls")),
    path("", include("geo311.notifications.urls")),
    path("", include("geo311.web.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
if settings.GEO311_SERVE_MEDIA:
    urlpatterns += [
        re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", media, name="media")
    ]
