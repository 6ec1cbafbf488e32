"""Writes for boundary layers: create a version from clean polygons, subdivide it, activate it."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import sql
from .models import Boundary, Layer, LayerKind, LayerVersion, VersionStatus


@dataclass(frozen=True)
class BoundaryRow:
    """One clean boundary: code, name, source attributes, and a MultiPolygon as EWKB (SRID 4326)."""

    code: str
    name: str
    attributes_json: str
    ewkb: bytes


def layer_get_or_create(*, slug: str, name: str = "", kind: str = LayerKind.OTHER) -> Layer:
    layer, created = Layer.objects.get_or_create(
        slug=slug,
        defaults={"name": name or slug.replace("-", " ").replace("_", " ").title(), "kind": kind},
    )
    if created:
        layer.full_clean()
    return layer


@transaction.atomic
def layer_version_create(
    *,
    layer: Layer,
    rows: Iterable[BoundaryRow],
    source_name: str,
    source_layer: str,
    checksum: str,
    source_crs: str,
    code_field: str,
    name_field: str,
    effective_from: dt.date | None,
    vertex_count: int,
    report: dict,
    max_vertices: int | None = None,
) -> LayerVersion:
    """Store a staged version of ``layer`` with its boundaries and their ST_Subdivide parts.

    Geometries must already be valid MultiPolygons in EPSG:4326. ``max_vertices`` (default
    ``settings.GEO311_SUBDIVIDE_MAX_VERTICES``) bounds the vertices of each lookup piece.
    """
    # Lock the layer so two imports of one layer cannot take the same version number.
    Layer.objects.select_for_update().filter(pk=layer.pk).get()
    last = layer.versions.order_by("-number").values_list("number", flat=True).first()
    version = LayerVersion(
        layer=layer,
        number=(last or 0) + 1,
        status=VersionStatus.STAGED,
        source_name=source_name,
        source_layer=source_layer,
        checksum=checksum,
        source_crs=source_crs,
        code_field=code_field,
        name_field=name_field,
        effective_from=effective_from,
        vertex_count=vertex_count,
        report=report,
    )
    version.full_clean()
    version.save()
    version.feature_count = sql.copy_boundaries(
        version_id=version.pk,
        rows=((r.code, r.name, r.attributes_json, r.ewkb) for r in rows),
    )
    sql.subdivide_version(
        version_id=version.pk,
        max_vertices=max_vertices or settings.GEO311_SUBDIVIDE_MAX_VERTICES,
    )
    version.save(update_fields=["feature_count"])
    sql.analyze_boundaries()
    return version


@transaction.atomic
def layer_version_activate(*, version: LayerVersion) -> LayerVersion:
    """Make ``version`` the one active version of its layer; the previous one is retired.

    The retired version's ``effective_to`` becomes the new version's ``effective_from``
    (today when none was given), so routing history can say which map was in force when.
    """
    Layer.objects.select_for_update().filter(pk=version.layer_id).get()
    version.refresh_from_db()
    if version.status == VersionStatus.ACTIVE:
        return version
    start = version.effective_from or timezone.localdate()
    LayerVersion.objects.filter(layer_id=version.layer_id, status=VersionStatus.ACTIVE).update(
        status=VersionStatus.RETIRED, effective_to=start
    )
    version.status = VersionStatus.ACTIVE
    version.effective_from = start
    version.effective_to = None
    version.activated_at = timezone.now()
    version.save(update_fields=["status", "effective_from", "effective_to", "activated_at"])
    return version


@transaction.atomic
def boundary_save(*, boundary: Boundary, max_vertices: int | None = None) -> Boundary:
    """Save an edited boundary and rebuild its lookup pieces from the new polygon."""
    boundary.full_clean()
    boundary.save()
    sql.subdivide_boundary(
        boundary_id=boundary.pk,
        max_vertices=max_vertices or settings.GEO311_SUBDIVIDE_MAX_VERTICES,
    )
    return boundary
