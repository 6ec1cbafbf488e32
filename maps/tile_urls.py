"""``/tiles/{layer}/{z}/{x}/{y}.mvt`` (mounted at ``tiles/``) and its thin view over
``maps.tiles.tile_render``.

Not a DRF view: a tile is bytes with HTTP caching headers, and the cached-tile path should cost
one query and little else. Outside the request transaction (ATOMIC_REQUESTS): a read that may
write the tile cache, which must not wait for or hold anything else.
"""

import re

from django.conf import settings
from django.db.transaction import non_atomic_requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import re_path
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.views.decorators.http import require_safe

from .tiles import TileError, tile_render

MVT = "application/vnd.mapbox-vector-tile"
_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


@non_atomic_requests
@require_safe
def tile_view(request: HttpRequest, layer: str, z: str, x: str, y: str) -> HttpResponse:
    """A tile: 200 with the MVT bytes (gzip-compressed when cached and the client accepts
    gzip), 204 when it has no features, 304 when the client's ``If-None-Match`` holds its ETag;
    400 / 403 / 404 with ``{"detail": ...}``."""
    try:
        tile = tile_render(
            layer=layer, z=int(z), x=int(x), y=int(y), query=request.GET, user=request.user
        )
    except TileError as error:
        return JsonResponse({"detail": error.message}, status=error.status)
    # The cache keeps each tile gzip-compressed too: sent as such to a client that takes it,
    # with a weak ETag (RFC 9110: another encoding of the same tile), as Django's GZipMiddleware
    # marks what it compresses.
    accepted = request.headers.get("Accept-Encoding", "")
    gzipped = bool(tile.gzipped) and bool(_ACCEPTS_GZIP.search(accepted))
    etag = "W/" + tile.etag if gzipped else tile.etag
    etags = parse_etags(request.headers.get("If-None-Match", ""))
    if {tile.etag, "W/" + tile.etag} & set(etags) or "*" in etags:
        response = HttpResponse(status=304)
    elif not tile.content:
        response = HttpResponse(status=204)
    elif gzipped:
        response = HttpResponse(tile.gzipped, content_type=MVT)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(tile.content, content_type=MVT)
    if tile.gzipped:
        patch_vary_headers(response, ("Accept-Encoding",))
    response["ETag"] = etag
    scope = "public" if tile.public else "private"
    response["Cache-Control"] = f"{scope}, max-age={int(settings.GEO311_TILE_MAX_AGE)}"
    response["X-Tile-Cache"] = "hit" if tile.cached else "miss"
    if not tile.public:
        patch_vary_headers(response, ("Cookie",))
    return response


app_name = "tiles"

# Signed numbers are matched so that a negative x or y is told why it is refused (400), not
# given a bare 404.
urlpatterns = [
    re_path(
        r"^(?P<layer>[\w-]+)/(?P<z>-?\d+)/(?P<x>-?\d+)/(?P<y>-?\d+)\.mvt$",
        tile_view,
        name="tile",
    ),
]
