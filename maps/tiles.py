"""Vector tiles (Mapbox Vector Tile) of requests, boundary layers and hot spot cells.

``tile_render`` answers ``GET /tiles/{layer}/{z}/{x}/{y}.mvt``: it checks the layer, tile and
filter, then serves the tile from the tile cache when one was made at the tile's current stamp,
or makes it with the layer's one ``ST_AsMVT`` statement (``maps.sql_tiles``) and stores it. A
stamp is the layer's generation and, for request tiles, the sum of the numbers of the areas
(z12 tiles) under the tile; both move inside the transactions that change the data under them
(migrations maps 0002 and 0005), so the cache table never serves a tile after its data
changed, and a change to requests makes afresh only the tiles over its area. A tile this
process keeps in memory is checked against the stamp as the process last heard it
(``sql_tiles.stamp``: within milliseconds of another process's commit).

Layers (a tile's MVT layer has the same name):

- ``requests``: above GEO311_TILE_CELL_MAX_ZOOM (12), one point per request with
  ``public_id``, ``service_code``, ``status`` (the city's status code), ``open311_status``
  (open/closed) and ``requested_at`` (UTC); sensitive categories at their public location. At
  and below it, square cells (32 across a tile) with the ``count`` of requests, from
  ``maps_request_cell`` (its per-cell sums ``maps_request_cell_total`` when nothing is
  filtered). Filters: ``service_code`` (repeatable or comma-separated), ``status``
  (open, closed or status codes), ``from`` / ``to`` (dates in the city's time zone, both
  included; at cell zooms whole months: the months of ``from`` through ``to``).
- each boundary layer by its slug: the active version's polygons with ``code``, ``name``,
  ``layer``.
- ``hotspots``: the cells of the latest finished hot spot (or emerging) run, or ``?run=ID``,
  with ``z``, ``p``, ``class``; staff with ``maps.view_reports`` only, as every analysis.

No reporter detail is in any tile: the queries select only the properties above.
"""

import datetime as dt
import gzip
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import QueryDict

from boundaries.models import Layer

from . import sql_tiles
from .filters import RequestFilter

REQUESTS = "requests"
HOTSPOTS = "hotspots"
BOUNDARIES = "boundaries"  # the generation all boundary layers share


class TileError(Exception):
    """A tile that cannot be served: ``status`` is the HTTP status, ``message`` names the
    offending part of the URL."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Tile:
    content: bytes  # empty: the tile has no features
    etag: str  # quoted, strong
    public: bool  # may shared caches keep it
    cached: bool  # served from the tile cache
    gzipped: bytes = b""  # the content gzip-compressed, when the cache keeps it so


def tile_layers() -> list[str]:
    """The layers a tile may be asked of: requests, hotspots and every boundary layer with an
    active version."""
    slugs = Layer.objects.filter(versions__status="active").values_list("slug", flat=True)
    return [REQUESTS, HOTSPOTS, *sorted(slugs)]


def tile_render(
    *, layer: str, z: int, x: int, y: int, query: QueryDict, user: object = None
) -> Tile:
    """The tile ``z/x/y`` of ``layer`` filtered by ``query``. Raises TileError."""
    _check_tile(z, x, y)
    if layer == HOTSPOTS:
        _check_can_view_reports(user)
    source = _source(layer)
    filter_key = _filter_key(layer, query)
    public = layer != HOTSPOTS
    if not settings.GEO311_TILE_CACHE:
        content = _make(layer, z, x, y, query)
        return Tile(content=content, etag=_etag(content), public=public, cached=False)
    key = (layer, z, x, y, filter_key)
    kept = _memory.get(key)
    areas = sql_tiles.area_range(z, x, y)
    # When this process has the tile, only its stamp is checked (heard, or one small read).
    if kept is not None and kept.stamp == sql_tiles.stamp(source=source, areas=areas):
        return Tile(kept.content, kept.etag, public, cached=True, gzipped=kept.gzipped)
    stamp, stored_etag, stored = sql_tiles.cached_tile(
        source=source, layer=layer, z=z, x=x, y=y, filter_key=filter_key, areas=areas
    )
    if stored_etag is not None and stored is not None:
        kept = _Kept(stamp, stored_etag, stored, _gzip(stored))
        _memory.put(key, kept)
        return Tile(stored, stored_etag, public, cached=True, gzipped=kept.gzipped)
    content = _make(layer, z, x, y, query)
    etag = _etag(content)
    sql_tiles.store_tile(
        layer=layer, z=z, x=x, y=y, filter_key=filter_key, stamp=stamp, etag=etag, tile=content
    )
    kept = _Kept(stamp, etag, content, _gzip(content))
    _memory.put(key, kept)
    return Tile(content, etag, public, cached=False, gzipped=kept.gzipped)


def _etag(content: bytes) -> str:
    return '"' + hashlib.blake2b(content, digest_size=16).hexdigest() + '"'


def _gzip(content: bytes) -> bytes:
    """A cached tile as the browsers' map libraries ask for it (Accept-Encoding: gzip): about a
    third of the bytes. Level 1: a 1 MB tile takes ~10 ms, and is compressed once per process;
    the higher levels took five times as long for 15% fewer bytes."""
    return gzip.compress(content, compresslevel=1, mtime=0) if content else b""


@dataclass(frozen=True)
class _Kept:
    stamp: sql_tiles.Stamp
    etag: str
    content: bytes
    gzipped: bytes

    @property
    def size(self) -> int:
        return len(self.content) + len(self.gzipped)


class _TileMemory:
    """The tiles this process served last, with their gzip-compressed copies, up to
    GEO311_TILE_MEMORY_MB: a hit is used only at the tile's stamp as ``sql_tiles.stamp`` has it
    (heard, without a query, while nothing under the tile changed); it saves reading and
    sending the tile's bytes from the database. Shared by the threads of a process."""

    def __init__(self) -> None:
        self._tiles: OrderedDict[tuple, _Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> _Kept | None:
        with self._lock:
            kept = self._tiles.get(key)
            if kept is not None:
                self._tiles.move_to_end(key)
            return kept

    def put(self, key: tuple, value: _Kept) -> None:
        budget = int(settings.GEO311_TILE_MEMORY_MB) * 1_000_000
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            if value.size > budget:
                return
            self._tiles[key] = value
            self._bytes += value.size
            while self._bytes > budget:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= dropped.size

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0


_memory = _TileMemory()


def tiles_prune() -> int:
    """Remove cached tiles of older generations (they are never served): the rows removed."""
    removed = 0
    removed += sql_tiles.prune_tiles(source=REQUESTS, layers=[REQUESTS])
    removed += sql_tiles.prune_tiles(source=HOTSPOTS, layers=[HOTSPOTS])
    slugs = list(Layer.objects.values_list("slug", flat=True))
    removed += sql_tiles.prune_tiles(source=BOUNDARIES, layers=slugs)
    return removed


def request_cells_rebuild() -> int:
    """Count every request into ``maps_request_cell`` again, with the current
    GEO311_SENSITIVE_GRID_M and time zone: the cell rows made."""
    return sql_tiles.request_cells_rebuild(
        grid_m=float(settings.GEO311_SENSITIVE_GRID_M), time_zone=settings.TIME_ZONE
    )


# --- checks -------------------------------------------------------------------------------


def _check_tile(z: int, x: int, y: int) -> None:
    max_zoom = int(settings.GEO311_TILE_MAX_ZOOM)
    if not 0 <= z <= max_zoom:
        raise TileError(400, f"z: {z} is out of range (0 to {max_zoom})")
    last = 2**z - 1
    if not 0 <= x <= last:
        raise TileError(400, f"x: {x} is out of range at zoom {z} (0 to {last})")
    if not 0 <= y <= last:
        raise TileError(400, f"y: {y} is out of range at zoom {z} (0 to {last})")


def _check_can_view_reports(user: object) -> None:
    user = user or AnonymousUser()
    if not (
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_staff", False)
        and user.has_perm("maps.view_reports")  # type: ignore[attr-defined]
    ):
        raise TileError(403, "hotspots tiles need a staff account with the view_reports permission")


def _source(layer: str) -> str:
    """The generation a layer's tiles are made at. A boundary slug is only checked on a cache
    miss (``_make``): a tile cached at the current generation was made for a layer that
    existed then, and removing a layer moves the generation."""
    if layer in (REQUESTS, HOTSPOTS):
        return layer
    return BOUNDARIES


def _filter_key(layer: str, query: QueryDict) -> str:
    """The part of the query string that makes a different tile, normalised (order, commas,
    repeats), and the feature cap: the cache key beside layer/z/x/y."""
    cap = f"cap{int(settings.GEO311_TILE_MAX_FEATURES)}"
    if layer == REQUESTS:
        parts: dict = {
            "service_code": sorted(set(_list(query, "service_code"))),
            "status": sorted(set(_list(query, "status"))),
            "from": query.get("from", ""),
            "to": query.get("to", ""),
        }
    elif layer == HOTSPOTS:
        parts = {"run": query.get("run", "")}
    else:
        return cap
    if not any(parts.values()):
        return cap
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
    return f"{cap}:{digest}"


def _list(query: QueryDict, name: str) -> list[str]:
    return [v.strip() for value in query.getlist(name) for v in value.split(",") if v.strip()]


def _date(query: QueryDict, name: str) -> dt.date | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise TileError(400, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def request_filter(query: QueryDict) -> RequestFilter:
    """The requests layer's filter from the query string. Raises TileError naming the field."""
    try:
        return RequestFilter(
            categories=tuple(_list(query, "service_code")),
            statuses=tuple(_list(query, "status")),
            start=_date(query, "from"),
            end=_date(query, "to"),
        )
    except ValidationError as error:
        raise TileError(400, _message(error)) from None


def _message(error: ValidationError) -> str:
    names = {"category": "service_code"}
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{names.get(field, field)}: {' '.join(str(m) for e in errors for m in e.messages)}"
            for field, errors in error.error_dict.items()
        )
    return " ".join(error.messages)


# --- making tiles -------------------------------------------------------------------------


def _make(layer: str, z: int, x: int, y: int, query: QueryDict) -> bytes:
    try:
        return sql_tiles.fetch_tile(*tile_statement(layer=layer, z=z, x=x, y=y, query=query))
    except sql_tiles.CountsOutdated:
        raise TileError(
            503,
            "request counts were made with another sensitive grid or time zone; "
            "run manage.py tiles_rebuild",
        ) from None


def tile_statement(
    *, layer: str, z: int, x: int, y: int, query: QueryDict
) -> tuple[str, dict[str, Any]]:
    """The ``ST_AsMVT`` statement and its parameters for a tile (what a cache miss runs; the
    benchmark times it bare). Raises TileError."""
    cap = int(settings.GEO311_TILE_MAX_FEATURES)
    tile = {"z": z, "x": x, "y": y, "cap": cap}
    edge = sql_tiles.BUFFER / sql_tiles.EXTENT
    if layer == REQUESTS:
        return _requests(tile, request_filter(query))
    if layer == HOTSPOTS:
        return sql_tiles.HOTSPOTS, {**tile, "margin": edge, "run": _hotspot_run(query)}
    if not Layer.objects.filter(slug=layer, versions__status="active").exists():
        raise TileError(404, f"no tile layer {layer!r}; layers: {', '.join(tile_layers())}")
    return sql_tiles.BOUNDARIES, {**tile, "margin": edge, "layer": layer}


def _requests(tile: dict, request_filter: RequestFilter) -> tuple[str, dict[str, Any]]:
    try:
        ids = request_filter.params()
    except ValidationError as error:
        raise TileError(400, _message(error)) from None
    z = tile["z"]
    grid_m = float(settings.GEO311_SENSITIVE_GRID_M)
    if z <= int(settings.GEO311_TILE_CELL_MAX_ZOOM):
        drawn = z + sql_tiles.CELLS_PER_TILE_SHIFT
        level = min(max(drawn, sql_tiles.CELL_LEVELS[0]), sql_tiles.CELL_LEVELS[1])
        shift = level - drawn
        span = 2 ** (sql_tiles.CELLS_PER_TILE_SHIFT + shift)
        cells = {
            **tile,
            "level": level,
            "shift": shift,
            "cx0": tile["x"] * span,
            "cx1": tile["x"] * span + span - 1,
            "cy0": tile["y"] * span,
            "cy1": tile["y"] * span + span - 1,
            "cell_m": sql_tiles.WORLD_M / 2**drawn,
            "half": sql_tiles.HALF_WORLD_M,
            # The counts must have been made with these (the statement checks).
            "grid_m": grid_m,
            "time_zone": settings.TIME_ZONE,
        }
        if request_filter == RequestFilter():
            return sql_tiles.REQUEST_CELL_TOTALS, cells
        start, end = request_filter.start, request_filter.end
        return (
            sql_tiles.REQUEST_CELLS,
            {
                **cells,
                "category_ids": ids["category_ids"],
                "status_ids": ids["status_ids"],
                "month_from": start.replace(day=1) if start else None,
                "month_to": end.replace(day=1) if end else None,
            },
        )
    # A sensitive request's public point is up to half a grid cell's diagonal (0.71 cells)
    # from its exact point, which the search filters on: widen the search by that much.
    tile_m = sql_tiles.WORLD_M / 2**z
    margin = max(sql_tiles.BUFFER / sql_tiles.EXTENT, 0.75 * grid_m / tile_m)
    return (
        sql_tiles.REQUEST_POINTS,
        {
            **tile,
            "margin": margin,
            "grid_m": grid_m,
            "category_ids": ids["category_ids"],
            "status_ids": ids["status_ids"],
            "start": ids["start"],
            "end": ids["end"],
        },
    )


def _hotspot_run(query: QueryDict) -> int:
    value = query.get("run", "").strip()
    if not value:
        run = sql_tiles.latest_hotspot_run()
        if run is None:
            raise TileError(404, "no finished hot spot run yet")
        return run
    if not value.isdigit() or not sql_tiles.hotspot_run_done(int(value)):
        raise TileError(400, f"run: {value!r} is not a finished hot spot run")
    return int(value)
