import csv
import itertools

import numpy as np
import pytest
from django.contrib.gis.geos import MultiPolygon, Point, Polygon

from boundaries import selectors
from boundaries.models import Boundary, BoundaryPart, VersionStatus
from tests.conftest import CHICAGO, SHARED_DATA
from tests.factories import BoundaryFactory, LayerFactory, LayerVersionFactory, box, square

REQUESTS = SHARED_DATA / "chicago" / "requests" / "sanitation_code_complaints_2011_2014.csv"

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


def _places(lons: list[float], lats: list[float]) -> list[set[int]]:
    found = selectors.points_places(lons=np.array(lons), lats=np.array(lats))
    assert len(found.of_point) == len(lons)
    return [set(found.places[p]) for p in found.of_point]


def test_points_places_gives_every_point_the_set_of_boundaries_it_falls_in(
    django_assert_num_queries,
):
    wards = LayerVersionFactory(layer=LayerFactory(slug="wards"))
    zones = LayerVersionFactory(layer=LayerFactory(slug="zones"))
    west = BoundaryFactory(version=wards, code="W", geom=box(-87.75, 41.75, -87.5, 42.0))
    east = BoundaryFactory(version=wards, code="E", geom=box(-87.5, 41.75, -87.25, 42.0))
    zone = BoundaryFactory(version=zones, code="Z", geom=box(-87.8, 41.7, -87.4, 42.1))
    lons = [-87.6, -87.3, -87.5, 10.0, -87.6]
    lats = [41.9, 41.9, 41.875, 10.0, 41.9]

    with django_assert_num_queries(1):
        found = selectors.points_places(lons=np.array(lons), lats=np.array(lats))
    assert [set(found.places[p]) for p in found.of_point] == [
        {west.pk, zone.pk},
        {east.pk},
        {west.pk, east.pk, zone.pk},  # on the shared edge: both neighbours, as a lookup says
        set(),
        {west.pk, zone.pk},
    ]
    # One place per distinct set of boundaries, each listed once, sorted.
    assert found.of_point[0] == found.of_point[4]
    assert len(found.places) == 4
    assert all(list(place) == sorted(set(place)) for place in found.places)


def test_points_places_counts_a_boundary_once_on_the_cut_between_its_pieces():
    boundary = BoundaryFactory(geom=box(0.0, 0.0, 2.0, 1.0))
    BoundaryPart.objects.filter(boundary=boundary).delete()
    for west in (0.0, 1.0):
        piece = Polygon.from_bbox((west, 0.0, west + 1.0, 1.0))
        piece.srid = 4326
        BoundaryPart.objects.create(boundary=boundary, version=boundary.version, geom=piece)
    found = selectors.points_places(lons=np.array([1.0, 0.5]), lats=np.array([0.5, 0.5]))
    assert found.places == [(boundary.pk,)]
    assert list(found.of_point) == [0, 0]


def test_points_places_reads_active_versions_only():
    layer = LayerFactory(slug="wards")
    active = BoundaryFactory(version=LayerVersionFactory(layer=layer), geom=square(0, 0, 1))
    staged = LayerVersionFactory(layer=layer, status=VersionStatus.STAGED)
    BoundaryFactory(version=staged, geom=square(0, 0, 1))
    assert _places([0.5], [0.5]) == [{active.pk}]


def test_points_places_agrees_with_the_one_point_lookup_on_real_boundaries(import_file):
    import_file(
        CHICAGO / "police_beats_2012.geojson",
        layer="police-beats",
        code_field="BEAT_NUM",
        merge_duplicates=True,
    )
    import_file(
        CHICAGO / "wards_2003_2015.geojson",
        layer="wards",
        code_field="ward",
        exclude_codes=frozenset({"OUT"}),
    )
    with REQUESTS.open(newline="") as fh:
        rows = [r for r in itertools.islice(csv.DictReader(fh), 0, 74_000, 250) if r["Latitude"]]
    lons = [float(r["Longitude"]) for r in rows]
    lats = [float(r["Latitude"]) for r in rows]
    # ... and a point on a ward boundary's own vertex, and one in the lake.
    ward = Boundary.objects.filter(version__layer__slug="wards").order_by("code").first()
    assert ward is not None
    vertex = ward.geom[0].exterior_ring[0]
    lons += [vertex[0], -87.5]
    lats += [vertex[1], 41.9]

    bulk = _places(lons, lats)
    one_by_one = [
        set(
            selectors.boundaries_containing(point=Point(x, y, srid=4326)).values_list(
                "pk", flat=True
            )
        )
        for x, y in zip(lons, lats, strict=True)
    ]
    assert bulk == one_by_one
    assert len(bulk) > 250
    assert ward.pk in bulk[-2]
    assert bulk[-1] == set()
    assert sum(len(s) == 2 for s in bulk) > 250  # a beat and a ward for nearly every request


def test_points_places_refuses_missing_coordinates_and_takes_no_points():
    with pytest.raises(ValueError, match="finite"):
        selectors.points_places(lons=np.array([1.0, np.nan]), lats=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="same length"):
        selectors.points_places(lons=np.array([1.0]), lats=np.array([1.0, 2.0]))
    empty = selectors.points_places(lons=np.array([]), lats=np.array([]))
    assert (len(empty.of_point), empty.places) == (0, [])
