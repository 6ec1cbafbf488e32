from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, object]:
    """``city_name`` for every page's header and title; ``map_centre`` ("lon,lat,zoom") where a
    map opens before it has anything to show (GEO311_MAP_CENTRE)."""
    return {
        "city_name": settings.GEO311_CITY_NAME,
        "map_centre": ",".join(str(v) for v in settings.GEO311_MAP_CENTRE),
    }
