"""The vector tile queries: one parameterised ``ST_AsMVT`` statement per tile layer, and the tile
cache's reads and writes (tables of migration maps 0002).

Raw SQL because the ORM cannot say ST_AsMVT / ST_AsMVTGeom / ST_TileEnvelope. Every query
filters with the *tile envelope transformed to the data's SRID* (4326), widened by a margin, so
the GiST index on the column is used (transforming the column would read every row), and draws
with ``ST_AsMVTGeom(ST_Transform(geom, 3857), envelope, EXTENT, BUFFER)``. Each caps its
features with ``LIMIT %(cap)s``: which features a capped tile keeps is unspecified.
"""

import math
import weakref
from collections import Counter
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

from geo311 import prepared

EXTENT = 4096
BUFFER = 64  # tile units drawn beyond each edge, so symbols and lines cross tile edges cleanly
WORLD_M = 40075016.685578488  # EPSG:3857 world width
HALF_WORLD_M = WORLD_M / 2
# Stored levels of maps_request_cell (migration 0002): level L cells are WORLD_M / 2**L wide.
# Tiles at zoom z draw level z + CELLS_PER_TILE_SHIFT (32 cells across a tile); below level 13
# the level-13 counts are added up in the query.
CELL_LEVELS = (13, 17)
CELLS_PER_TILE_SHIFT = 5

# Points of requests (z > 12). Sensitive categories are drawn at their public location; their
# exact point can lie up to a grid cell's half-diagonal outside the tile, so the caller widens
# the search margin by that much.
REQUEST_POINTS = """
SELECT ST_AsMVT(t.*, 'requests', %(extent)s, 'geom') FROM (
    SELECT * FROM (
        SELECT ST_AsMVTGeom(
                   ST_Transform(geo311_public_location(r.location, c.sensitive, %(grid_m)s), 3857),
                   ST_TileEnvelope(%(z)s, %(x)s, %(y)s), %(extent)s, %(buffer)s) AS geom,
               r.public_id, c.service_code, s.code AS status, s.open311_status,
               to_char(r.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                   AS requested_at
        FROM geo311_servicerequest r
        JOIN geo311_servicecategory c ON c.id = r.category_id
        JOIN geo311_status s ON s.id = r.status_id
        WHERE r.location && ST_Transform(
                  ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)
          AND (%(category_ids)s::bigint[] IS NULL OR r.category_id = ANY(%(category_ids)s))
          AND (%(status_ids)s::bigint[] IS NULL OR r.status_id = ANY(%(status_ids)s))
          AND (%(start)s::timestamptz IS NULL OR r.requested_at >= %(start)s)
          AND (%(end)s::timestamptz IS NULL OR r.requested_at < %(end)s)
    ) q
    WHERE q.geom IS NOT NULL
    LIMIT %(cap)s
) t
"""

# Cell counts of requests (z <= 12): square cells aligned with the tile, drawn as polygons with
# their ``count``. The cells of a tile are an integer range of the level's cx / cy (cy counts
# rows from the north edge like tile y), so the primary key answers the filter; ``shift`` adds
# up 2**shift x 2**shift stored cells into one drawn cell. Months are whole months in the city's
# time zone (maps_request_cell_config). The second column says whether the counts were made with
# the grid and time zone the caller gives: a tile is one round trip, its check included.
_CELLS = """
WITH cells AS (
    SELECT c.cx >> %(shift)s AS tx, c.cy >> %(shift)s AS ty, sum(c.n)::bigint AS n
    FROM {table} c
    WHERE c.level = %(level)s
      AND c.cx BETWEEN %(cx0)s AND %(cx1)s
      AND c.cy BETWEEN %(cy0)s AND %(cy1)s{filters}
    GROUP BY 1, 2
    HAVING sum(c.n) > 0
    LIMIT %(cap)s
)
SELECT (
    SELECT ST_AsMVT(t.*, 'requests', %(extent)s, 'geom') FROM (
        SELECT ST_AsMVTGeom(
                   ST_MakeEnvelope(
                       cells.tx * %(cell_m)s - %(half)s, %(half)s - (cells.ty + 1) * %(cell_m)s,
                       (cells.tx + 1) * %(cell_m)s - %(half)s, %(half)s - cells.ty * %(cell_m)s,
                       3857),
                   ST_TileEnvelope(%(z)s, %(x)s, %(y)s), %(extent)s, %(buffer)s) AS geom,
               cells.n AS count
        FROM cells
    ) t
), EXISTS (
    SELECT FROM maps_request_cell_config
    WHERE grid_m = %(grid_m)s AND time_zone = %(time_zone)s
) AS counts_current
"""
REQUEST_CELLS = _CELLS.format(
    table="maps_request_cell",
    filters="""
      AND (%(category_ids)s::bigint[] IS NULL OR c.category_id = ANY(%(category_ids)s))
      AND (%(status_ids)s::bigint[] IS NULL OR c.status_id = ANY(%(status_ids)s))
      AND (%(month_from)s::date IS NULL OR c.month >= %(month_from)s)
      AND (%(month_to)s::date IS NULL OR c.month <= %(month_to)s)""",
)
# The same without a filter, from the per-cell sums (migration maps 0003): one row per cell
# instead of one per category, status and month (~150 of them per cell of a busy city).
REQUEST_CELL_TOTALS = _CELLS.format(table="maps_request_cell_total", filters="")

# The polygons of a boundary layer's active version.
BOUNDARIES = """
SELECT ST_AsMVT(t.*, %(layer)s, %(extent)s, 'geom') FROM (
    SELECT * FROM (
        SELECT ST_AsMVTGeom(ST_Transform(b.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                            %(extent)s, %(buffer)s) AS geom,
               b.code, b.name, l.slug AS layer
        FROM boundaries_boundary b
        JOIN boundaries_layerversion v ON v.id = b.version_id AND v.status = 'active'
        JOIN boundaries_layer l ON l.id = v.layer_id
        WHERE l.slug = %(layer)s
          AND b.geom && ST_Transform(
                  ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)
    ) q
    WHERE q.geom IS NOT NULL
    LIMIT %(cap)s
) t
"""

# The cells of one hot spot run.
HOTSPOTS = """
SELECT ST_AsMVT(t.*, 'hotspots', %(extent)s, 'geom') FROM (
    SELECT * FROM (
        SELECT ST_AsMVTGeom(ST_Transform(h.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                            %(extent)s, %(buffer)s) AS geom,
               h.z, h.p, h.hotspot_class AS class
        FROM maps_hotspotcell h
        WHERE h.run_id = %(run)s
          AND h.geom && ST_Transform(
                  ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)
    ) q
    WHERE q.geom IS NOT NULL
    LIMIT %(cap)s
) t
"""

LATEST_HOTSPOT_RUN = """
SELECT id FROM maps_analysisrun
WHERE kind IN ('hotspots', 'emerging') AND status = 'done'
ORDER BY finished_at DESC NULLS LAST, id DESC
LIMIT 1
"""

HOTSPOT_RUN_DONE = """
SELECT 1 FROM maps_analysisrun
WHERE id = %(run)s AND kind IN ('hotspots', 'emerging') AND status = 'done'
"""

# A tile's stamp: its layer's generation, and the sum of the numbers of the areas (z12 tiles,
# migration maps 0005) its envelope and buffer touch. Numbers only grow, so any change
# committed under the tile makes the sum grow. CACHED reads the stamp and, when one was made
# at that stamp, the cached tile: one statement, so a tile is never read under a stamp older
# than the data it shows.
_AREAS_SUM = """(
    SELECT coalesce(sum(t.generation), 0)::bigint FROM maps_tile_area t
    WHERE t.layer = g.layer AND t.ax BETWEEN %(ax0)s AND %(ax1)s
      AND t.ay BETWEEN %(ay0)s AND %(ay1)s
)"""
_CACHED = """
SELECT g.generation, a.areas, c.etag, c.tile
FROM maps_tile_generation g
CROSS JOIN LATERAL (SELECT {areas_sum} AS areas) a
LEFT JOIN maps_tile_cache c
    ON c.layer = %(layer)s AND c.z = %(z)s AND c.x = %(x)s AND c.y = %(y)s
   AND c.filter_key = %(filter_key)s AND c.generation = g.generation AND c.areas = a.areas
WHERE g.layer = %(source)s
"""
CACHED = _CACHED.format(areas_sum=_AREAS_SUM)
# The same stamp alone.
_STAMP = "SELECT g.generation, {areas_sum} FROM maps_tile_generation g WHERE g.layer = %(source)s"
STAMP = _STAMP.format(areas_sum=_AREAS_SUM)
GENERATION = "SELECT generation FROM maps_tile_generation WHERE layer = %(source)s"
AREAS = "SELECT ax, ay, generation FROM maps_tile_area WHERE layer = %(source)s"

# A tile made at an older stamp never replaces one made at a newer (for one tile both parts
# only grow).
STORE = """
INSERT INTO maps_tile_cache AS c (layer, z, x, y, filter_key, generation, areas, etag, tile)
VALUES (%(layer)s, %(z)s, %(x)s, %(y)s, %(filter_key)s, %(generation)s, %(areas)s, %(etag)s,
        %(tile)s)
ON CONFLICT (layer, z, x, y, filter_key) DO UPDATE
SET generation = EXCLUDED.generation, areas = EXCLUDED.areas, etag = EXCLUDED.etag,
    tile = EXCLUDED.tile, made_at = now()
WHERE (c.generation, c.areas) < (EXCLUDED.generation, EXCLUDED.areas)
"""

# Tiles of older generations are never served; this removes them.
PRUNE = """
DELETE FROM maps_tile_cache c USING maps_tile_generation g
WHERE g.layer = %(source)s AND c.layer = ANY(%(layers)s) AND c.generation < g.generation
"""

REBUILD_CELLS = "SELECT maps_request_cells_rebuild(%(grid_m)s, %(time_zone)s)"


# How the tile statements are run: see fetch_tile.
PLANNER_SETTINGS = (
    "SELECT set_config('jit', 'off', false),"
    " set_config('max_parallel_workers_per_gather', '0', false)"
)
_PLANNER_SET: "weakref.WeakSet[Any]" = weakref.WeakSet()


class CountsOutdated(Exception):
    """The request cell counts were made with another grid or time zone than the tile asks."""


def fetch_tile(sql: str, params: dict[str, Any]) -> bytes:
    """Run one of the ST_AsMVT statements above: the tile's bytes (empty: no features). Raises
    CountsOutdated when a cell statement finds the counts made with another grid or time zone.

    Without JIT and without parallel workers (PLANNER_SETTINGS): the estimates of these
    statements (PostGIS functions over many rows, costed high) pass jit_above_cost, and
    compiling took longer (100+ ms) than running them; and they make the planner start
    parallel workers for tiles that take a few milliseconds alone. With 1.2 M requests on two
    cores, the z16 tiles it planned so took 15-21 ms against 3-9 ms without workers. Set once
    per database connection (a round trip per tile would cost more than the settings are
    worth to the short queries of the web requests that share the connection; analyses read
    on connections of their own)."""
    with connection.cursor() as cursor:
        raw = connection.connection
        if raw is not None and raw not in _PLANNER_SET:
            cursor.execute(PLANNER_SETTINGS)
            _PLANNER_SET.add(raw)
        cursor.execute(sql, {"extent": EXTENT, "buffer": BUFFER, **params})
        row = cursor.fetchone()
    if row is not None and len(row) > 1 and not row[1]:
        raise CountsOutdated
    return bytes(row[0]) if row and row[0] is not None else b""


Stamp = tuple[int, int]  # (layer generation, sum of its areas' numbers)
Areas = tuple[int, int, int, int]  # ax0, ax1, ay0, ay1: the areas a tile touches

AREA_ZOOM = 12  # an area is a tile of this zoom (migration maps 0005)


def area_range(z: int, x: int, y: int) -> Areas:
    """The areas (AREA_ZOOM tiles) the tile ``z/x/y`` draws from: its envelope widened by the
    buffer its features may be drawn in."""
    edge = BUFFER / EXTENT
    scale = 2.0 ** (AREA_ZOOM - z)
    last = 2**AREA_ZOOM - 1

    def span(i: int) -> tuple[int, int]:
        first = math.floor((i - edge) * scale)
        end = math.ceil((i + 1 + edge) * scale)  # the first area past the widened tile
        return max(0, first), min(last, end - 1)

    return (*span(x), *span(y))


def cached_tile(
    *, source: str, layer: str, z: int, x: int, y: int, filter_key: str, areas: Areas
) -> tuple[Stamp, str | None, bytes | None]:
    """(current stamp of the tile over ``areas``, etag, tile): etag and tile None on a miss."""
    params: dict[str, Any] = {
        "source": source,
        "layer": layer,
        "z": z,
        "x": x,
        "y": y,
        "filter_key": filter_key,
        **_area_params(areas),
    }
    with connection.cursor() as cursor:
        cursor.execute(CACHED, params)
        generation, total, etag, tile = cursor.fetchone()
    return (generation, total), etag, (bytes(tile) if tile is not None else None)


def stamp(*, source: str, areas: Areas) -> Stamp:
    """The current stamp of a tile of ``source`` over ``areas``: what a tile this process keeps
    in memory must have been made at to be served.

    Outside a transaction (the tile view runs outside one), the numbers are read once per
    database connection and then heard: the connection LISTENs on CHANNEL, where
    ``maps_tile_bump`` names the layer it moves (migration maps 0004) and the request triggers
    each area they move (0005) as the change commits; what a notification names is read again
    at the next tile that needs it. A tile served from memory therefore costs no round trip
    while nothing under it changed; the notification reaches a connection within milliseconds
    of the commit, and at once when it was this connection's own. Inside a transaction, or
    with GEO311_TILE_LISTEN off (behind a pooler that cannot LISTEN) or CONN_MAX_AGE 0 (no
    connection outlives a request), the stamp is read every time: one short prepared
    statement."""
    db = connection
    if (
        not settings.GEO311_TILE_LISTEN
        or db.in_atomic_block
        or db.settings_dict["CONN_MAX_AGE"] == 0
    ):
        [(number, total)] = prepared.fetch_all(STAMP, {"source": source, **_area_params(areas)})
        return int(number), int(total)
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    heard = _HEARD.get(raw)
    if heard is None:
        heard = _Heard()
        raw.add_notify_handler(heard.notified)
        with db.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        _HEARD[raw] = heard
    else:
        heard.drain(raw)
    # A notification that comes in while a number is read may be for a later commit than the
    # one read: what is read is kept only if none did.
    number = heard.numbers.get(source)
    if number is None:
        moved = heard.moved[source]
        [(number,)] = prepared.fetch_all(GENERATION, {"source": source})
        if heard.moved[source] == moved:
            heard.numbers[source] = number
    known = heard.areas.get(source)
    if known is None:
        moved = heard.areas_moved[source]
        rows = prepared.fetch_all(AREAS, {"source": source})
        known = {(ax, ay): n for ax, ay, n in rows}
        if heard.areas_moved[source] == moved:
            heard.areas[source] = known
    return int(number), _areas_sum(known, areas)


def _areas_sum(known: dict[tuple[int, int], int], areas: Areas) -> int:
    """The sum of the numbers of ``areas`` (absent: 0), walking the range or the known areas,
    whichever is shorter: a z16 tile touches one to four areas, a z4 tile thousands."""
    ax0, ax1, ay0, ay1 = areas
    if (ax1 - ax0 + 1) * (ay1 - ay0 + 1) <= len(known):
        return sum(
            known.get((ax, ay), 0) for ax in range(ax0, ax1 + 1) for ay in range(ay0, ay1 + 1)
        )
    return sum(n for (ax, ay), n in known.items() if ax0 <= ax <= ax1 and ay0 <= ay <= ay1)


def _area_params(areas: Areas) -> dict[str, int]:
    return dict(zip(("ax0", "ax1", "ay0", "ay1"), areas, strict=True))


CHANNEL = "geo311_tiles"


class _Heard:
    """The numbers one connection has read (layer generations; each layer's area numbers),
    each forgotten when a notification on CHANNEL names it: ``<layer>`` or
    ``<layer>:<ax>:<ay>``."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.moved: Counter[str] = Counter()
        self.areas: dict[str, dict[tuple[int, int], int]] = {}
        self.areas_moved: Counter[str] = Counter()

    def notified(self, notify: psycopg.Notify) -> None:
        """psycopg calls this for each notification a statement on the connection brings in."""
        if notify.channel == CHANNEL:
            self.forget(notify.payload)

    def forget(self, payload: str) -> None:
        source, _, area = payload.partition(":")
        if area:
            self.areas.pop(source, None)
            self.areas_moved[source] += 1
        else:
            self.numbers.pop(source, None)
            self.moved[source] += 1

    def drain(self, raw: psycopg.Connection) -> None:
        """Take in the notifications that arrived since the connection was last used, without
        a round trip: what the socket holds (libpq's PQconsumeInput + PQnotifies)."""
        pgconn = raw.pgconn
        with raw.lock:
            try:
                pgconn.consume_input()
            except psycopg.OperationalError:
                # A broken connection: read again, which raises as any other query would.
                self.numbers.clear()
                self.areas.clear()
                return
            while (notify := pgconn.notifies()) is not None:
                if notify.relname.decode() == CHANNEL:
                    self.forget(notify.extra.decode())


# By psycopg connection: a new connection LISTENs and reads each number afresh.
_HEARD: "weakref.WeakKeyDictionary[Any, _Heard]" = weakref.WeakKeyDictionary()


def store_tile(
    *,
    layer: str,
    z: int,
    x: int,
    y: int,
    filter_key: str,
    stamp: Stamp,
    etag: str,
    tile: bytes,
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            STORE,
            {
                "layer": layer,
                "z": z,
                "x": x,
                "y": y,
                "filter_key": filter_key,
                "generation": stamp[0],
                "areas": stamp[1],
                "etag": etag,
                "tile": tile,
            },
        )


def prune_tiles(*, source: str, layers: list[str]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(PRUNE, {"source": source, "layers": layers})
        return cursor.rowcount


def latest_hotspot_run() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(LATEST_HOTSPOT_RUN)
        row = cursor.fetchone()
    return int(row[0]) if row else None


def hotspot_run_done(run: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(HOTSPOT_RUN_DONE, {"run": run})
        return cursor.fetchone() is not None


def request_cells_rebuild(*, grid_m: float, time_zone: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_CELLS, {"grid_m": grid_m, "time_zone": time_zone})
        return int(cursor.fetchone()[0])
