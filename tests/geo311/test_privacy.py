"""A sensitive category's public point: the database function and the Python twin agree, move the
point by at most half a cell diagonal, and leave other categories' points alone."""

import math

import pytest
from django.contrib.gis.geos import Point
from django.db import connection

from geo311.privacy import public_lonlat, public_point

POINTS = [(-87.6298, 41.8781), (-87.9073, 41.9742), (-87.5244, 41.6445), (-73.9857, 40.7484)]


@pytest.mark.django_db
@pytest.mark.parametrize(("lon", "lat"), POINTS)
def test_database_and_python_give_the_same_public_point(lon: float, lat: float, settings) -> None:
    settings.GEO311_SENSITIVE_GRID_M = 250.0
    exact = Point(lon, lat, srid=4326)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ST_X(p), ST_Y(p), ST_Distance(ST_Transform(p, 3857),"
            " ST_Transform(%s::geometry, 3857))"
            " FROM geo311_public_location(%s::geometry, true, %s) AS p",
            [exact.ewkt, exact.ewkt, 250.0],
        )
        x, y, moved = cursor.fetchone()
    ours = public_point(exact, sensitive=True)
    assert (ours.x, ours.y) == pytest.approx((x, y), abs=1e-9)
    assert (ours.x, ours.y) != (lon, lat)
    assert moved <= 250 * math.sqrt(2) / 2 + 1e-6
    # Every point of one cell publishes as the same point: nearby reports are not told apart.
    near = Point(lon + 1e-5, lat + 1e-5, srid=4326)
    snapped_near = public_point(near, sensitive=True)
    same_cell = public_point(exact, sensitive=True).transform(3857, clone=True)
    assert abs(snapped_near.transform(3857, clone=True).x - same_cell.x) in (0.0, 250.0)


@pytest.mark.django_db
def test_other_categories_keep_their_exact_point() -> None:
    exact = Point(-87.6298, 41.8781, srid=4326)
    assert public_point(exact, sensitive=False) is exact
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ST_AsText(geo311_public_location(%s::geometry, false, 250))", [exact.ewkt]
        )
        assert cursor.fetchone()[0] == "POINT(-87.6298 41.8781)"


@pytest.mark.parametrize(("lon", "lat"), POINTS)
def test_public_lonlat_is_public_point_in_numbers(lon: float, lat: float, settings) -> None:
    settings.GEO311_SENSITIVE_GRID_M = 250.0
    exact = Point(lon, lat, srid=4326)
    snapped = public_point(exact, sensitive=True)
    assert public_lonlat(lon, lat, True) == (snapped.x, snapped.y)
    assert public_lonlat(lon, lat, True) != (lon, lat)
    assert public_lonlat(lon, lat, False) == (lon, lat)
