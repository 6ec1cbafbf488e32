from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, str]:
    """``city_name`` for every page's header and title."""
    return {"city_name": settings.GEO311_CITY_NAME}
