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

# Asking for a run writes it (and its job) in one transaction; reading results does not need
# one. The performance report reads one snapshot of the request facts either way.
urlpatterns = [
    path("hotspots", api.HotspotsApi.as_view(), name="hotspots"),
    path("hotspots.geojson", api.HotspotsGeojsonApi.as_view(), name="hotspots-geojson"),
    path("emerging", api.EmergingApi.as_view(), name="emerging"),
    path("emerging.geojson", api.EmergingGeojsonApi.as_view(), name="emerging-geojson"),
    path("clusters", api.ClustersApi.as_view(), name="clusters"),
    path("clusters.geojson", api.ClustersGeojsonApi.as_view(), name="clusters-geojson"),
    path("density", api.DensityApi.as_view(), name="density"),
    path("runs/", non_atomic_requests(api.RunListApi.as_view()), name="run-list"),
    path("runs/<int:pk>/", non_atomic_requests(api.RunDetailApi.as_view()), name="run-detail"),
    path(
        "runs/<int:pk>/cells.<export:fmt>",
        non_atomic_requests(api.RunCellsApi.as_view()),
        name="run-cells",
    ),
    path(
        "runs/<int:pk>/clusters.<export:fmt>",
        non_atomic_requests(api.RunClustersApi.as_view()),
        name="run-clusters",
    ),
    path(
        "runs/<int:pk>/density.png",
        non_atomic_requests(api.RunDensityPngApi.as_view()),
        name="run-density-png",
    ),
    path(
        "runs/<int:pk>/density.json",
        non_atomic_requests(api.RunDensityGridApi.as_view()),
        name="run-density-grid",
    ),
    path("performance", api.PerformanceApi.as_view(), name="performance"),
    path("performance.csv", api.PerformanceCsvApi.as_view(), name="performance-csv"),
    path("performance/charts", api.PerformanceChartsApi.as_view(), name="performance-charts"),
    path("equity.geojson", api.EquityGeojsonApi.as_view(), name="equity-geojson"),
    path("report.html", api.ReportHtmlApi.as_view(), name="report"),
]
