import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from boundaries import services
from boundaries.models import BoundaryPart, LayerVersion, VersionStatus
from tests.factories import BoundaryFactory, LayerFactory, LayerVersionFactory, box

pytestmark = pytest.mark.django_db


def test_activation_retires_the_previous_version_and_dates_both():
    layer = LayerFactory()
    old = LayerVersionFactory(
        layer=layer, status=VersionStatus.ACTIVE, effective_from=dt.date(2003, 5, 1)
    )
    new = LayerVersionFactory(
        layer=layer, status=VersionStatus.STAGED, effective_from=dt.date(2015, 5, 18)
    )
    services.layer_version_activate(version=new)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, old.effective_to) == (VersionStatus.RETIRED, dt.date(2015, 5, 18))
    assert (new.status, new.effective_from, new.effective_to) == (
        VersionStatus.ACTIVE,
        dt.date(2015, 5, 18),
        None,
    )
    assert new.activated_at is not None


def test_database_allows_one_active_version_per_layer():
    layer = LayerFactory()
    LayerVersionFactory(layer=layer, status=VersionStatus.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        LayerVersion.objects.create(
            layer=layer,
            number=99,
            status=VersionStatus.ACTIVE,
            source_name="x",
            checksum="x",
            source_crs="EPSG:4326",
            code_field="code",
        )


def test_saving_an_edited_boundary_rebuilds_its_lookup_pieces():
    boundary = BoundaryFactory(geom=box(-87.7, 41.8, -87.6, 41.9))
    old_parts = set(BoundaryPart.objects.filter(boundary=boundary).values_list("pk", flat=True))
    assert old_parts
    boundary.geom = box(10.0, 10.0, 11.0, 11.0)
    services.boundary_save(boundary=boundary)
    parts = BoundaryPart.objects.filter(boundary=boundary)
    assert not old_parts & set(parts.values_list("pk", flat=True))
    assert all(p.geom.extent == (10.0, 10.0, 11.0, 11.0) for p in parts)


def test_subdivided_pieces_respect_the_vertex_budget():
    # A 400-vertex circle-ish polygon split at 64 vertices per piece.
    from django.contrib.gis.geos import MultiPolygon, Point

    circle = Point(-87.6, 41.8, srid=4326).buffer(0.05, quadsegs=100)
    boundary = BoundaryFactory.build(geom=MultiPolygon(circle, srid=4326))
    boundary.version.layer.save()
    boundary.version.layer = boundary.version.layer
    boundary.version.save()
    boundary.version_id = boundary.version.pk
    services.boundary_save(boundary=boundary, max_vertices=64)
    parts = list(BoundaryPart.objects.filter(boundary=boundary))
    assert len(parts) > 1
    assert max(p.geom.num_coords for p in parts) <= 64 + 1  # + ring closure
