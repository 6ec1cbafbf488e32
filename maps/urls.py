from django.db.transaction import non_atomic_requests
from django.urls import path, register_converter

from . import api


class ExportFormat:
    regex = "geojson|csv|gpkg"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExportFormat, "export")

app_name = "analysis"

# Each request is one transaction (ATOMIC_REQUESTS): asking for a run writes it and its job
# together. Performance reports are reads (a refresh of the facts commits on its own) outside
# the request's transaction, so they can read the facts on several connections at once (one
# snapshot: maps.sql.facts_for_report).
urlpatterns = [
    path("hotspots", api.HotspotsApi.as_view(), name="hotspots"),
    path("hotspots.geojson", api.HotspotsGeojsonApi.as_view(), name="hotspots-geojson"),
    path("emerging", api.EmergingApi.as_view(), name="emerging"),
    path("emerging.geojson", api.EmergingGeojsonApi.as_view(), name="emerging-geojson"),
    path("clusters", api.ClustersApi.as_view(), name="clusters"),
    path("clusters.geojson", api.ClustersGeojsonApi.as_view(), name="clusters-geojson"),
    path("density", api.DensityApi.as_view(), name="density"),
    path("runs/", api.RunListApi.as_view(), name="run-list"),
    path("runs/<int:pk>/", api.RunDetailApi.as_view(), name="run-detail"),
    path(
        "runs/<int:pk>/cells.<export:fmt>",
        api.RunCellsApi.as_view(),
        name="run-cells",
    ),
    path(
        "runs/<int:pk>/clusters.<export:fmt>",
        api.RunClustersApi.as_view(),
        name="run-clusters",
    ),
    path(
        "runs/<int:pk>/density.png",
        api.RunDensityPngApi.as_view(),
        name="run-density-png",
    ),
    path(
        "runs/<int:pk>/density.json",
        api.RunDensityGridApi.as_view(),
        name="run-density-grid",
    ),
    path("performance", non_atomic_requests(api.PerformanceApi.as_view()), name="performance"),
    path(
        "performance.csv",
        non_atomic_requests(api.PerformanceCsvApi.as_view()),
        name="performance-csv",
    ),
    path(
        "performance/charts",
        non_atomic_requests(api.PerformanceChartsApi.as_view()),
        name="performance-charts",
    ),
    path(
        "equity.geojson", non_atomic_requests(api.EquityGeojsonApi.as_view()), name="equity-geojson"
    ),
    path("report.html", api.ReportHtmlApi.as_view(), name="report"),
]
