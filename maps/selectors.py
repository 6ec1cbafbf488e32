"""Reads for analyses: runs, their cells and clusters, and what an analysis needs to know about
the city (its projected CRS, its outline, its denominators).

Geometries are WGS84 (EPSG:4326); distances and cell sizes are metres.
"""

from django.conf import settings
from django.contrib.gis.db.models import Extent
from django.db.models import QuerySet

from boundaries.models import Boundary, Layer, LayerKind, LayerVersion, VersionStatus

from . import sql
from .analysis import check_metric_srid, utm_srid
from .models import AnalysisRun, Denominator, HotspotCell, RequestCluster


def run_get(*, pk: int) -> AnalysisRun:
    """Raises AnalysisRun.DoesNotExist."""
    return AnalysisRun.objects.get(pk=pk)


def run_find(*, key: str) -> AnalysisRun | None:
    """The live (queued, running or done) run answering ``key``, if any."""
    return AnalysisRun.objects.filter(key=key).exclude(status="failed").first()


def run_list(*, limit: int = 50) -> QuerySet[AnalysisRun]:
    return AnalysisRun.objects.defer("result").order_by("-created_at")[:limit]


def hotspot_cells(*, run: AnalysisRun, significant_only: bool = False) -> QuerySet[HotspotCell]:
    """The cells of a hot spot or emerging hot spot run (geometry in EPSG:4326).

    This is the table a vector-tile layer of hot spots reads: ``maps_hotspotcell`` rows of one
    ``run_id``, with ``geom``, ``z``, ``p``, ``q``, ``gi_bin`` and ``hotspot_class``.
    """
    cells = HotspotCell.objects.filter(run=run)
    if significant_only:
        cells = cells.exclude(hotspot_class__in=["not_significant", "no_pattern"])
    return cells.order_by("cell")


def hotspot_cells_geojson(*, run: AnalysisRun, significant_only: bool = False) -> str:
    """A run's cells as a GeoJSON FeatureCollection (text), serialised by PostGIS."""
    return sql.cells_geojson(run_id=run.pk, significant_only=significant_only)


def clusters(*, run: AnalysisRun, min_size: int = 0) -> QuerySet[RequestCluster]:
    return RequestCluster.objects.filter(run=run, size__gte=min_size).order_by("label")


def clusters_geojson(*, run: AnalysisRun, min_size: int = 0) -> str:
    return sql.clusters_geojson(run_id=run.pk, min_size=min_size)


def jurisdiction_version_ids() -> list[int]:
    """Active versions of the city-outline layers (kind jurisdiction)."""
    return list(
        LayerVersion.objects.filter(
            status=VersionStatus.ACTIVE, layer__kind=LayerKind.JURISDICTION
        ).values_list("pk", flat=True)
    )


def layer_active_version(*, slug: str) -> LayerVersion:
    """Raises Layer.DoesNotExist or LayerVersion.DoesNotExist (no active version)."""
    layer = Layer.objects.get(slug=slug)
    return layer.versions.get(status=VersionStatus.ACTIVE)


def denominator_get(*, slug: str) -> Denominator:
    return Denominator.objects.get(slug=slug)


def analysis_srid() -> int:
    """The projected CRS (metres) analyses measure in: ``GEO311_ANALYSIS_SRID`` when set, else
    the UTM zone of the centre of the city outline, else of the requests' extent (the
    planner's estimate from the table statistics, else the real extent)."""
    if settings.GEO311_ANALYSIS_SRID:
        check_metric_srid(settings.GEO311_ANALYSIS_SRID)
        return settings.GEO311_ANALYSIS_SRID
    outline = Boundary.objects.filter(version_id__in=jurisdiction_version_ids()).aggregate(
        e=Extent("geom")
    )["e"]
    extent = outline or sql.requests_extent()
    if extent is None:
        # No outline and no request: any zone will do, there is nothing to measure.
        return utm_srid(lon=0.0, lat=0.0)
    west, south, east, north = extent
    return utm_srid(lon=(west + east) / 2, lat=(south + north) / 2)
