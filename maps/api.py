"""Analysis API for planners and managers (``/api/v1/analysis/``): one small view per
operation, each with its own input serializer; staff with the ``maps.view_reports``
permission only.

Heavy analyses are runs: asking (``GET hotspots?…``) answers the stored run for the same
filter, parameters and data when there is one, else queues a job and answers 202 with the run
to poll (``runs/{id}/``). The ``.geojson`` forms answer the result itself once it is done.
Performance reports are computed on the spot (they read the request facts, see
``maps.performance``).
"""

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import exports, performance, reports, selectors, services
from .models import AnalysisKind, AnalysisRun, RunStatus
from .serializers import (
    ClusterInputSerializer,
    DensityInputSerializer,
    EmergingInputSerializer,
    HotspotInputSerializer,
    PerformanceCsvInputSerializer,
    PerformanceInputSerializer,
    RunListSerializer,
    RunSerializer,
)

GEOJSON = "application/geo+json"


class CanViewReports(permissions.BasePermission):
    """Staff who hold ``maps.view_reports`` (given to the manager role)."""

    message = "Analyses and reports need a staff account with the view_reports permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.is_staff and user.has_perm("maps.view_reports")
        )


class AnalysisApi(APIView):
    authentication_classes = [SessionAuthentication, BasicAuthentication]
    permission_classes = [CanViewReports]


def _django_errors(exc: DjangoValidationError) -> ApiValidationError:
    detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
    return ApiValidationError(detail)


def _run_response(run: AnalysisRun) -> Response:
    pending = run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    code = status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK
    response = Response(RunSerializer(run).data, status=code)
    if code == status.HTTP_202_ACCEPTED:
        response["Location"] = f"/api/v1/analysis/runs/{run.pk}/"
        response["Retry-After"] = "2"
    return response


class _AskApi(AnalysisApi):
    kind: str
    input_serializer: type

    def ask(self, request: Request) -> AnalysisRun:
        params = self.input_serializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            return services.analysis_request(
                kind=self.kind,
                request_filter=params.request_filter(),
                params=params.analysis_params(),
                user=request.user,
                refresh=params.validated_data.get("refresh", False),
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def get(self, request: Request) -> Response:
        return _run_response(self.ask(request))


class HotspotsApi(_AskApi):
    """Gi* hot and cold spots of the filtered requests (a run)."""

    kind = AnalysisKind.HOTSPOTS
    input_serializer = HotspotInputSerializer

    @extend_schema(
        parameters=[HotspotInputSerializer], responses={200: RunSerializer, 202: RunSerializer}
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class EmergingApi(_AskApi):
    """Emerging hot spots: Gi* per month or week and the Mann-Kendall trend of each cell."""

    kind = AnalysisKind.EMERGING
    input_serializer = EmergingInputSerializer

    @extend_schema(
        parameters=[EmergingInputSerializer], responses={200: RunSerializer, 202: RunSerializer}
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class ClustersApi(_AskApi):
    """DBSCAN clusters of the filtered requests, in metres (a run)."""

    kind = AnalysisKind.CLUSTERS
    input_serializer = ClusterInputSerializer

    @extend_schema(
        parameters=[ClusterInputSerializer], responses={200: RunSerializer, 202: RunSerializer}
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class DensityApi(_AskApi):
    """A kernel density surface of the filtered requests (a run)."""

    kind = AnalysisKind.DENSITY
    input_serializer = DensityInputSerializer

    @extend_schema(
        parameters=[DensityInputSerializer], responses={200: RunSerializer, 202: RunSerializer}
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class _ResultGeojsonApi(_AskApi):
    """The result as GeoJSON once the run is done; the run (202) until then."""

    def geojson(self, run: AnalysisRun) -> str:
        raise NotImplementedError

    def get(self, request: Request) -> Response | HttpResponse:  # type: ignore[override]
        run = self.ask(request)
        if run.status != RunStatus.DONE:
            return _run_response(run)
        return HttpResponse(self.geojson(run), content_type=GEOJSON)


class HotspotsGeojsonApi(_ResultGeojsonApi):
    """Hot spot cells as GeoJSON (EPSG:4326): z, p, FDR-adjusted p (q), Gi_Bin, class."""

    kind = AnalysisKind.HOTSPOTS
    input_serializer = HotspotInputSerializer

    def geojson(self, run: AnalysisRun) -> str:
        return selectors.hotspot_cells_geojson(run=run)

    @extend_schema(
        parameters=[HotspotInputSerializer],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT, 202: RunSerializer},
    )
    def get(self, request: Request) -> Response | HttpResponse:  # type: ignore[override]
        return super().get(request)


class EmergingGeojsonApi(_ResultGeojsonApi):
    kind = AnalysisKind.EMERGING
    input_serializer = EmergingInputSerializer

    def geojson(self, run: AnalysisRun) -> str:
        return selectors.hotspot_cells_geojson(run=run)

    @extend_schema(
        parameters=[EmergingInputSerializer],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT, 202: RunSerializer},
    )
    def get(self, request: Request) -> Response | HttpResponse:  # type: ignore[override]
        return super().get(request)


class ClustersGeojsonApi(_ResultGeojsonApi):
    kind = AnalysisKind.CLUSTERS
    input_serializer = ClusterInputSerializer

    def geojson(self, run: AnalysisRun) -> str:
        return selectors.clusters_geojson(run=run)

    @extend_schema(
        parameters=[ClusterInputSerializer],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT, 202: RunSerializer},
    )
    def get(self, request: Request) -> Response | HttpResponse:  # type: ignore[override]
        return super().get(request)


# --- runs ----------------------------------------------------------------------------------------


class RunListApi(AnalysisApi):
    """The latest runs, newest first."""

    @extend_schema(responses=RunListSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(RunListSerializer(selectors.run_list(), many=True).data)


def _run(pk: int, *kinds: str) -> AnalysisRun:
    try:
        run = selectors.run_get(pk=pk)
    except AnalysisRun.DoesNotExist:
        raise NotFound(f"no analysis run {pk}") from None
    if kinds and run.kind not in kinds:
        raise NotFound(f"run {pk} is a {run.kind} run")
    return run


def _done(run: AnalysisRun) -> None:
    if run.status != RunStatus.DONE:
        raise NotFound(
            f"run {run.pk} is {run.status}, not done; see /api/v1/analysis/runs/{run.pk}/"
        )


class RunDetailApi(AnalysisApi):
    """One run: status, progress (percent), message, summary, links to its results."""

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(_run(pk)).data)


def _download(body: str | bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class RunCellsApi(AnalysisApi):
    """A hot spot or emerging run's cells as GeoJSON, CSV (with a point inside each cell) or
    GeoPackage."""

    @extend_schema(responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int, fmt: str) -> HttpResponse:
        run = _run(pk, AnalysisKind.HOTSPOTS, AnalysisKind.EMERGING)
        _done(run)
        text = selectors.hotspot_cells_geojson(run=run)
        name = f"geo311-{run.kind}-{run.pk}"
        if fmt == "geojson":
            return HttpResponse(text, content_type=GEOJSON)
        if fmt == "csv":
            return _download(exports.geojson_csv(json.loads(text)), "text/csv", f"{name}.csv")
        return _download(
            exports.geopackage(json.loads(text), layer=f"{run.kind}_cells"),
            "application/geopackage+sqlite3",
            f"{name}.gpkg",
        )


class RunClustersApi(AnalysisApi):
    """A cluster run's clusters (hulls, members' ids) as GeoJSON, CSV or GeoPackage."""

    @extend_schema(responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int, fmt: str) -> HttpResponse:
        run = _run(pk, AnalysisKind.CLUSTERS)
        _done(run)
        text = selectors.clusters_geojson(run=run)
        name = f"geo311-clusters-{run.pk}"
        if fmt == "geojson":
            return HttpResponse(text, content_type=GEOJSON)
        if fmt == "csv":
            return _download(exports.geojson_csv(json.loads(text)), "text/csv", f"{name}.csv")
        return _download(
            exports.geopackage(json.loads(text), layer="clusters"),
            "application/geopackage+sqlite3",
            f"{name}.gpkg",
        )


class RunDensityPngApi(AnalysisApi):
    """A density run's surface as a PNG for a map overlay; its bounds are in the response's
    ``X-Bounds`` header (south,west,north,east) and the run's result."""

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        run = _run(pk, AnalysisKind.DENSITY)
        _done(run)
        png, bounds = reports.density_overlay(run)
        response = HttpResponse(png, content_type="image/png")
        response["X-Bounds"] = ",".join(f"{v:.6f}" for v in (*bounds[0], *bounds[1]))
        return response


class RunDensityGridApi(AnalysisApi):
    """A density run's grid: requests per km² at cells of ``cell_m`` metres from (x0, y0) in
    EPSG:``srid``, rows from south to north."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, pk: int) -> Response:
        run = _run(pk, AnalysisKind.DENSITY)
        _done(run)
        return Response(run.result)


# --- performance --------------------------------------------------------------------------------


def _performance(params: PerformanceInputSerializer, *, detail: bool | None = None) -> dict:
    data = params.validated_data
    try:
        return performance.performance_report(
            request_filter=params.request_filter(),
            layer=data.get("layer") or None,
            refresh=data.get("refresh", False),
            detail=data["detail"] if detail is None else detail,
        )
    except DjangoValidationError as exc:
        raise _django_errors(exc) from exc


class PerformanceApi(AnalysisApi):
    """Times to acknowledge and to close (median, p90), SLA compliance, backlog, open work and
    equity, by department × category × area × month and each alone (see maps.performance)."""

    @extend_schema(parameters=[PerformanceInputSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        params = PerformanceInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(_performance(params))


class PerformanceCsvApi(AnalysisApi):
    """One table of the performance report as CSV (``table=detail`` by default)."""

    @extend_schema(
        parameters=[PerformanceCsvInputSerializer],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        params = PerformanceCsvInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        table = params.validated_data["table"]
        report = _performance(params, detail=table == "detail")
        return _download(exports.csv_text(report[table]), "text/csv", f"geo311-{table}.csv")


class PerformanceChartsApi(AnalysisApi):
    """The performance report's charts as PNG data: URIs (trend, categories, departments,
    areas, equity), for the planner page."""

    @extend_schema(parameters=[PerformanceInputSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        params = PerformanceInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        report = _performance(params, detail=False)
        return Response({"city": report["city"], "charts": reports.charts(report)})


class EquityGeojsonApi(AnalysisApi):
    """Median days to close per area of ``layer`` against the city median, on the areas'
    polygons (GeoJSON, EPSG:4326): the equity choropleth."""

    @extend_schema(
        parameters=[PerformanceInputSerializer], responses={(200, GEOJSON): OpenApiTypes.OBJECT}
    )
    def get(self, request: Request) -> HttpResponse:
        params = PerformanceInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        if not params.validated_data.get("layer"):
            raise ApiValidationError({"layer": "the equity map needs a boundary layer"})
        report = _performance(params, detail=False)
        return HttpResponse(
            json.dumps(performance.equity_geojson(report=report)), content_type=GEOJSON
        )


class ReportHtmlApi(AnalysisApi):
    """The planner report (HTML, opens offline) for a filter: when its runs are done; until
    then 202 with the runs still pending."""

    @extend_schema(
        parameters=[PerformanceInputSerializer],
        responses={
            (200, "text/html"): OpenApiTypes.STR,
            202: OpenApiResponse(RunSerializer(many=True), description="runs still pending"),
        },
    )
    def get(self, request: Request) -> Response | HttpResponse:
        params = PerformanceInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        request_filter = params.request_filter()
        layer = params.validated_data.get("layer") or None
        try:
            runs = services.report_runs(request_filter=request_filter, user=request.user)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc
        pending = runs.pending()
        if pending:
            return Response(RunSerializer(pending, many=True).data, status=202)
        report = _performance(params, detail=False)
        body = reports.report_html(
            request_filter=request_filter,
            performance=report,
            equity_geojson=performance.equity_geojson(report=report) if layer else {},
            hotspots=runs.done(runs.hotspots),
            emerging=runs.done(runs.emerging),
            clusters=runs.done(runs.clusters),
            density=runs.done(runs.density),
            outline_layer=layer,
        )
        response = HttpResponse(body, content_type="text/html; charset=utf-8")
        filename = reports.report_filename(request_filter)
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return response
