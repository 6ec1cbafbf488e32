"""Reads for boundary layers. Points are WGS84 (EPSG:4326); areas are square metres."""

from dataclasses import dataclass

from django.contrib.gis.db.models import Extent
from django.contrib.gis.geos import Point
from django.db.models import Count, Prefetch, QuerySet

from . import sql
from .models import Boundary, BoundaryPart, Layer, LayerVersion, VersionStatus


def boundaries_containing(*, point: Point, layers: list[str] | None = None) -> QuerySet[Boundary]:
    """Every boundary of an active version whose polygon covers ``point`` (EPSG:4326).

    The GiST index on the subdivided parts finds the few small pieces around the point; a point
    on a shared edge belongs to both neighbours (``covers``, not ``contains``). The polygons and
    source attributes are not fetched (a borough outline is 36,000 vertices): callers that need
    them ask for them by pk.
    """
    parts = BoundaryPart.objects.filter(geom__covers=point, version__status=VersionStatus.ACTIVE)
    if layers:
        parts = parts.filter(version__layer__slug__in=layers)
    return (
        Boundary.objects.filter(pk__in=parts.values("boundary_id"))
        .defer("geom", "attributes", "version__report")
        .select_related("version__layer")
        .order_by("version__layer__slug", "code")
    )


def active_layer_ids(*, kind: str) -> set[int]:
    """Ids of the layers of ``kind`` that have an active version."""
    return set(
        LayerVersion.objects.filter(status=VersionStatus.ACTIVE, layer__kind=kind).values_list(
            "layer_id", flat=True
        )
    )


def layer_list() -> QuerySet[Layer]:
    active = LayerVersion.objects.filter(status=VersionStatus.ACTIVE)
    return (
        Layer.objects.prefetch_related(
            Prefetch("versions", queryset=active, to_attr="active_versions")
        )
        .annotate(version_count=Count("versions"))
        .order_by("slug")
    )


def layer_versions(*, layer: Layer) -> QuerySet[LayerVersion]:
    return layer.versions.order_by("-number")


def layer_active_version(*, layer: Layer) -> LayerVersion | None:
    return layer.versions.filter(status=VersionStatus.ACTIVE).first()


def version_extent(*, version: LayerVersion) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees of a version's boundaries, or None when empty."""
    return Boundary.objects.filter(version=version).aggregate(e=Extent("geom"))["e"]


def boundary_get(*, pk: int) -> Boundary:
    return Boundary.objects.select_related("version__layer").get(pk=pk)


def layer_boundaries_geojson(
    *, version: LayerVersion, simplify_m: float = 0.0, bbox: tuple | None = None
) -> str:
    """A version's boundaries as one GeoJSON FeatureCollection, built by PostGIS.

    ``simplify_m`` is a tolerance in metres (0 = full detail); ``bbox`` is (west, south, east,
    north) in degrees.
    """
    return sql.layer_feature_collection(version_id=version.pk, simplify_m=simplify_m, bbox=bbox)


@dataclass(frozen=True)
class VersionChange:
    code: str
    name: str
    change: str  # added / removed / changed
    area_change_pct: float | None
    moved_m2: float | None


def version_diff(
    *, new: LayerVersion, old: LayerVersion | None, tolerance_m2: float = 1.0
) -> list[VersionChange]:
    """Boundaries added, removed, or changed (symmetric difference above ``tolerance_m2``)."""
    if old is None:
        return []
    changes = []
    for row in sql.version_diff_rows(new_version_id=new.pk, old_version_id=old.pk):
        if row["change"] == "kept":
            if (row["moved_m2"] or 0.0) <= tolerance_m2:
                continue
            change = "changed"
            pct = (row["new_area_m2"] - row["old_area_m2"]) / row["old_area_m2"] * 100.0
        else:
            change, pct = row["change"], None
        changes.append(
            VersionChange(
                code=row["code"],
                name=row["name"] or "",
                change=change,
                area_change_pct=pct,
                moved_m2=row["moved_m2"],
            )
        )
    return changes


@dataclass(frozen=True)
class TopologyProblem:
    kind: str  # overlap / gap
    codes: tuple[str, ...]
    area_m2: float
    lat: float
    lon: float


def version_topology(*, version: LayerVersion, tolerance_m2: float) -> list[TopologyProblem]:
    """Overlaps between boundaries and gaps enclosed by the layer, larger than ``tolerance_m2``."""
    problems = [
        TopologyProblem("overlap", (a, b), area, lat, lon)
        for a, b, area, lat, lon in sql.topology_overlaps(
            version_id=version.pk, tolerance_m2=tolerance_m2
        )
    ]
    problems += [
        TopologyProblem("gap", (), area, lat, lon)
        for area, lat, lon in sql.topology_gaps(version_id=version.pk, tolerance_m2=tolerance_m2)
    ]
    return problems
