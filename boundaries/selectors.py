"""Reads for boundary layers. Points are WGS84 (EPSG:4326); areas are square metres."""

from dataclasses import dataclass

import numpy as np
import shapely
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


@dataclass(frozen=True)
class PointPlaces:
    """Where each of many points lies. A *place* is a set of active boundaries (the empty set:
    outside every active layer); points in the same boundaries share it, so a city's points fall
    into a few thousand places that can be routed once each.

    ``of_point[i]`` is the place of the i-th point (an index into ``places``); ``places[p]`` the
    sorted ids of the boundaries of place ``p``.
    """

    of_point: np.ndarray
    places: list[tuple[int, ...]]


# Points per round of the bulk join below: bounds the memory of its candidate pairs (~10 per
# point on NYC's 7 layers) to a few hundred MB, whatever the size of the file.
POINTS_PER_ROUND = 250_000


def points_places(*, lons: np.ndarray, lats: np.ndarray) -> PointPlaces:
    """The place of every point (longitudes, latitudes in EPSG:4326, finite) in one pass.

    Same answer as ``boundaries_containing`` for each point (``covers``: a point on an edge is
    in both neighbours), but for a whole file at once: the active pieces around the points are
    read once, an STRtree over them pairs each point with the pieces whose box holds it, and
    GEOS' prepared point-in-polygon test (``intersects_xy``) keeps the pieces that cover it.
    Measured on NYC's 855,552 tax lots and 7 layers (8.7 M candidate pairs; bench
    bulk_route_nyc): the same join as one PostGIS statement took 11-14 s of backend CPU, this
    3-4 s of one core. One query.
    """
    lons = np.asarray(lons, dtype=np.float64)
    lats = np.asarray(lats, dtype=np.float64)
    if lons.shape != lats.shape or lons.ndim != 1:
        raise ValueError("lons and lats must be 1-d arrays of the same length")
    if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise ValueError("lons and lats must be finite (reject rows without coordinates first)")
    n = len(lons)
    if n == 0:
        return PointPlaces(of_point=np.zeros(0, dtype=np.int32), places=[])
    rows = sql.active_pieces(
        bbox=(float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max()))
    )
    if not rows:
        return PointPlaces(of_point=np.zeros(n, dtype=np.int32), places=[()])
    boundary_ids = np.array([boundary_id for boundary_id, _wkb in rows], dtype=np.int64)
    pieces = shapely.from_wkb([wkb for _boundary_id, wkb in rows])
    shapely.prepare(pieces)
    tree = shapely.STRtree(pieces)
    # Boundaries by rank (0..nb-1): small integers that pack with a point index into one int64.
    ranked, rank_of_piece = np.unique(boundary_ids, return_inverse=True)
    nb = len(ranked)
    keys = []
    for start in range(0, n, POINTS_PER_ROUND):
        x, y = lons[start : start + POINTS_PER_ROUND], lats[start : start + POINTS_PER_ROUND]
        point, piece = tree.query(shapely.points(x, y))
        inside = shapely.intersects_xy(pieces[piece], x[point], y[point])
        keys.append((point[inside] + start) * nb + rank_of_piece[piece[inside]])
    return _places(np.concatenate(keys), n=n, ranked=ranked)


def _places(keys: np.ndarray, *, n: int, ranked: np.ndarray) -> PointPlaces:
    """Group (point × nb + boundary rank) keys into places, exactly and without a Python loop
    per point or per key."""
    nb = len(ranked)
    # np.unique on millions of int64 is slow in numpy 2.4 (a hash table): sort and compare.
    keys = np.sort(keys)
    if len(keys):
        # A point on the cut between two pieces of one boundary is found twice.
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    point = keys // nb
    rank = keys - point * nb
    counts = np.bincount(point, minlength=n)
    starts = np.cumsum(counts) - counts  # keys are sorted by point, then by boundary
    # Fold the boundaries in one at a time: the place after j boundaries is a dense id of (the
    # place after j - 1, the j-th boundary or none), so equal sets end with equal ids.
    state = np.zeros(n, dtype=np.int64)
    distinct = 1
    for j in range(int(counts.max(initial=0))):
        holders = np.flatnonzero(counts > j)
        combined = state * (nb + 1)
        combined[holders] += rank[starts[holders] + j] + 1
        state, distinct = _dense(combined, bound=distinct * (nb + 1))
    # Each place's boundaries, read off its first point.
    _ids, first = np.unique(state, return_index=True)
    places = [
        tuple(ranked[rank[starts[p] : starts[p] + counts[p]]].tolist()) for p in first.tolist()
    ]
    return PointPlaces(of_point=state.astype(np.int32), places=places)


def _dense(values: np.ndarray, *, bound: int) -> tuple[np.ndarray, int]:
    """``values`` (all in [0, bound)) renumbered 0..k-1 in their order, and k."""
    if bound > 1 << 26:  # a lookup table would be too large: sort instead
        _ids, inverse = np.unique(values, return_inverse=True)
        return inverse.astype(np.int64), len(_ids)
    seen = np.zeros(bound, dtype=bool)
    seen[values] = True
    lookup = np.cumsum(seen) - 1
    return lookup[values], int(lookup[-1]) + 1


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
