from django.conf import settings
from django.http import HttpRequest


def live_updates(request: HttpRequest) -> dict[str, str]:
    """``events_base_url`` for pages that open event streams: the ASGI server's base URL
    (GEO311_EVENTS_URL), or "" for this site; the stream of request N is at
    ``{events_base_url}/api/v1/requests/N/events``."""
    return {"events_base_url": settings.GEO311_EVENTS_URL}
