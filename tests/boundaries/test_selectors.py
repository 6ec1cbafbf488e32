import pytest
from django.contrib.gis.geos import MultiPolygon, Point, Polygon

from boundaries import selectors
from boundaries.models import VersionStatus
from tests.factories import BoundaryFactory, LayerFactory, LayerVersionFactory, box, square

pytestmark = pytest.mark.django_db


def test_boundaries_containing_finds_every_active_layer_and_only_those():
    wards = LayerVersionFactory(layer=LayerFactory(slug="wards"))
    zones = LayerVersionFactory(layer=LayerFactory(slug="zones"))
    inside = BoundaryFactory(version=wards, code="1", geom=square(-87.7, 41.8, 0.1))
    BoundaryFactory(version=wards, code="2", geom=square(-87.6, 41.8, 0.1))
    zone = BoundaryFactory(version=zones, code="Z", geom=square(-87.75, 41.75, 0.2))
    point = Point(-87.65, 41.85, srid=4326)

    assert list(selectors.boundaries_containing(point=point)) == [inside, zone]
    assert list(selectors.boundaries_containing(point=point, layers=["zones"])) == [zone]
    assert list(selectors.boundaries_containing(point=Point(0, 0, srid=4326))) == []


def test_point_on_a_shared_edge_belongs_to_both_neighbours():
    version = LayerVersionFactory()
    west = BoundaryFactory(version=version, code="W", geom=box(-87.75, 41.75, -87.5, 42.0))
    east = BoundaryFactory(version=version, code="E", geom=box(-87.5, 41.75, -87.25, 42.0))
    on_edge = Point(-87.5, 41.875, srid=4326)
    assert set(selectors.boundaries_containing(point=on_edge)) == {west, east}


def test_staged_and_retired_versions_are_not_looked_up():
    layer = LayerFactory(slug="wards")
    for status in (VersionStatus.STAGED, VersionStatus.RETIRED):
        version = LayerVersionFactory(layer=layer, status=status)
        BoundaryFactory(version=version, geom=square(-87.7, 41.8, 0.1))
    assert not selectors.boundaries_containing(point=Point(-87.65, 41.85, srid=4326)).exists()


def test_lookup_is_one_query(django_assert_num_queries):
    version = LayerVersionFactory()
    BoundaryFactory(version=version, geom=square(-87.7, 41.8, 0.1))
    with django_assert_num_queries(1):
        found = list(selectors.boundaries_containing(point=Point(-87.65, 41.85, srid=4326)))
        assert found[0].version.layer.slug == version.layer.slug


def test_topology_reports_overlaps_and_gaps_with_area_and_place():
    version = LayerVersionFactory()
    # A and B overlap in a 0.01° x 0.10° strip; C is a frame with a 0.02° square hole that no
    # boundary covers: a gap enclosed by the layer.
    BoundaryFactory(version=version, code="A", geom=square(0.0, 0.0, 0.11))
    BoundaryFactory(version=version, code="B", geom=square(0.10, 0.0, 0.10))
    frame = Polygon.from_bbox((0.0, 0.11, 0.3, 0.3)) - Polygon.from_bbox((0.15, 0.20, 0.17, 0.22))
    BoundaryFactory(version=version, code="C", geom=MultiPolygon(frame, srid=4326))

    problems = selectors.version_topology(version=version, tolerance_m2=1.0)
    overlaps = [p for p in problems if p.kind == "overlap"]
    gaps = [p for p in problems if p.kind == "gap"]
    assert [p.codes for p in overlaps] == [("A", "B")]
    # At the equator 0.01° of longitude is 1,113 m and 0.10° of latitude 11,057 m.
    assert overlaps[0].area_m2 == pytest.approx(1113.2 * 11057.4, rel=0.01)
    assert 0.10 < overlaps[0].lon < 0.11
    assert len(gaps) == 1
    assert gaps[0].area_m2 == pytest.approx(2226.4 * 2211.6, rel=0.01)
    assert 0.15 < gaps[0].lon < 0.17
    assert 0.20 < gaps[0].lat < 0.22

    assert selectors.version_topology(version=version, tolerance_m2=1e9) == []
