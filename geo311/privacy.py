"""What the public may see of a request's location.

A request of a sensitive category (``ServiceCategory.sensitive``: a noise complaint points at a
neighbour's door) is published at the centre of its cell of a ``GEO311_SENSITIVE_GRID_M`` grid in
EPSG:3857 (the tiles' grid), never at its exact point. SQL calls the database function
``geo311_public_location(location, sensitive, grid_m)`` (migration 0009); Python code that
publishes one request calls ``public_point``, which computes the same point.
"""

from typing import Any, cast

from django.conf import settings
from django.contrib.gis.geos import Point

WEB_MERCATOR = 3857


def sensitive_grid_m() -> float:
    return float(settings.GEO311_SENSITIVE_GRID_M)


def public_point(location: Point, sensitive: bool) -> Point:
    """``location`` (WGS84) as the public may see it: itself, or its grid cell's centre.

    The same arithmetic as ST_SnapToGrid with the grid offset by half a cell, so the point and
    the tiles agree to the last digit they print.
    """
    if not sensitive:
        return location
    grid = sensitive_grid_m()
    projected = cast(Point, location.transform(WEB_MERCATOR, clone=True))
    snapped = Point(
        _cell_centre(projected.x, grid), _cell_centre(projected.y, grid), srid=WEB_MERCATOR
    )
    return cast(Point, snapped.transform(location.srid or 4326, clone=True))


def public_lonlat(lon: float, lat: float, sensitive: bool) -> tuple[float, float]:
    """``public_point`` for a point given as WGS84 numbers; no geometry is made for a point
    that is published as it is."""
    if not sensitive:
        return lon, lat
    point = public_point(Point(lon, lat, srid=4326), True)
    return point.x, point.y


def _cell_centre(value: float, grid: float) -> float:
    # ST_SnapToGrid rounds with rint() (half to even), as round() does.
    return round((value - grid / 2) / grid) * grid + grid / 2


def public_location_of(request: Any) -> Point:
    """A request's point as the public may see it (its category's ``sensitive`` decides)."""
    return public_point(request.location, bool(request.category.sensitive))


def public_address_of(request: Any) -> str:
    """The street address the public may see: none for a sensitive category (an address is
    an exact place, whatever the grid hides)."""
    return "" if request.category.sensitive else str(request.address)


def public_distance_m(distance_m: float, sensitive: bool) -> float:
    """A distance to a request as the public may see it: to a sensitive request, rounded to
    the grid, so that distances from several probe points cannot pin its exact place down
    more finely than its published cell does."""
    if not sensitive:
        return round(distance_m, 1)
    grid = sensitive_grid_m()
    return float(round(distance_m / grid) * grid)


def public_reasons(reasons: list[str], sensitive: bool) -> list[str]:
    """Why a request may repeat another, as the public may read it: for a sensitive request,
    without the street-address comparison (asking with address after address would tell
    which one it is)."""
    if not sensitive:
        return reasons
    return [reason for reason in reasons if "street address" not in reason]
