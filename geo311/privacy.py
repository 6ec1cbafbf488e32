"""What the public may see of a request's location.

A request of a sensitive category (``ServiceCategory.sensitive``: a noise complaint points at a
neighbour's door) is published at the centre of its cell of a ``GEO311_SENSITIVE_GRID_M`` grid in
EPSG:3857 (the tiles' grid), never at its exact point. SQL calls the database function
``geo311_public_location(location, sensitive, grid_m)`` (migration 0009); Python code that
publishes one request calls ``public_point``, which computes the same point.
"""

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
    projected = Point(location.x, location.y, srid=location.srid or 4326)
    projected.transform(WEB_MERCATOR)
    x, y = projected.x, projected.y
    snapped = Point(_cell_centre(x, grid), _cell_centre(y, grid), srid=WEB_MERCATOR)
    snapped.transform(location.srid or 4326)
    return snapped


def _cell_centre(value: float, grid: float) -> float:
    # ST_SnapToGrid rounds with rint() (half to even), as round() does.
    return round((value - grid / 2) / grid) * grid + grid / 2
