"""tiles: vector tile latency of the requests layer at z16, z14, z12 and z10 through the HTTP API
(gunicorn, 3 sync workers as ``make run`` serves, the tile cache OFF, libcurl asking one tile at
a time, on a new connection each time since a sync worker closes it) against the bare
``ST_AsMVT`` statement for the same tiles (the exact statement and parameters a cache miss runs,
``maps.tiles.tile_statement``, sent with psycopg client-side binding as Django sends it, without
JIT and parallel workers as the API runs it: ``maps.sql_tiles.PLANNER_SETTINGS``).

With the >= 1.2 M synthetic NYC requests of ``nearby_query`` (two years at tax-lot points).
Tiles: the 3 x 3 block of tiles around each of four dense NYC places per zoom, without repeats
and without the tiles that hold no request (at z10, most of the blocks: water and New Jersey);
each tile ROUNDS times, API and SQL one right after the other, so both see the same background
load, the API first in even rounds and the SQL first in odd ones: the second read of a tile
finds its pages in PostgreSQL's shared buffers (the table is larger than they are), and always
asking the API first charged it 0.1-0.5 ms a tile. z16 and z14 draw points (capped at
GEO311_TILE_MAX_FEATURES), z12 and z10 the cell counts (unfiltered: the per-cell totals).

Beside every tile, the floors under any answer are read once (``details.floors_ms``): a WSGI
app that answers an empty 200 under the same gunicorn (``bench.floor_wsgi``), Django's /health
(one SELECT 1) and a bare SELECT 1. ``per_zoom.*.best_ratio_p50`` is the ratio a tile would have
if its answer cost its statement plus only that floor: where it is above the goal, no view under
gunicorn reaches the goal at that zoom.

Also measured (``details.trigger_cost``): what the cell-count triggers add to a one-row INSERT
into geo311_servicerequest (its own transaction), with the triggers enabled and disabled, on
the loaded table.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pycurl

from .common import (
    BenchError,
    Gunicorn,
    free_port,
    latency_stats,
    log,
    median,
    raw_connection,
    write_result,
)

NAME = "tiles"
ZOOMS = (16, 14, 12, 10)
ROUNDS = 6  # even: API and SQL each go first in half of them
WORKERS = 3  # as make run serves (scripts/serve.sh)
GOAL_RATIO = 1.2
GOAL_LOW_ZOOM_MS = 100.0
# Dense places of the synthetic requests (lon, lat).
PLACES = {
    "midtown": (-73.9857, 40.7484),
    "downtown_brooklyn": (-73.9903, 40.6928),
    "jackson_heights": (-73.8831, 40.7557),
    "south_bronx": (-73.9180, 40.8160),
}


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def tiles_at(z: int, block: int = 1) -> list[tuple[int, int, int]]:
    """The (2 block + 1)^2 tiles around each place at zoom ``z``, without repeats."""
    seen: dict[tuple[int, int, int], None] = {}
    for lon, lat in PLACES.values():
        cx, cy = tile_xy(lon, lat, z)
        for dx in range(-block, block + 1):
            for dy in range(-block, block + 1):
                seen[(z, cx + dx, cy + dy)] = None
    return list(seen)


def first_view_tiles() -> list[tuple[int, int, int]]:
    """A typical first map view: the 4 x 4 tiles at z12 covering most of NYC's boroughs
    (a 1024 px square map at the city's zoom)."""
    cx, cy = tile_xy(*PLACES["midtown"], 12)
    return [(12, cx + dx, cy + dy) for dy in range(-2, 2) for dx in range(-2, 2)]


def ensure_requests() -> dict:
    """The 1.2 M synthetic requests (nearby_query's), and the count of the table."""
    from django.db import connection

    from . import nearby_query

    loaded = nearby_query.ensure_rows()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo311_servicerequest")
        rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM maps_request_cell")
        cells = cursor.fetchone()[0]
    return {"loaded": loaded, "requests": rows, "cell_rows": cells}


def start_server(
    tmp: Path, *, cache: bool, workers: int = 2, threads: int = 2, worker_class: str = "gthread"
) -> Gunicorn:
    os.environ["GEO311_TILE_CACHE"] = "true" if cache else "false"
    args = ["--workers", str(workers), "-k", worker_class]
    if worker_class == "gthread":
        args += ["--threads", str(threads)]
    try:
        server = Gunicorn(free_port(), tmp / "gunicorn.log", args)
    finally:
        os.environ.pop("GEO311_TILE_CACHE", None)
    server.wait_ready()
    return server


def _trigger_cost(rows: int = 200) -> dict:
    """ms per one-row INSERT (each committed on its own) with the cell-count triggers and
    without; the rows are removed after, each as it was added, so the counts stay exact."""
    triggers = ("maps_request_cells_inserted", "maps_request_cells_deleted")
    insert = """
INSERT INTO geo311_servicerequest (token, category_id, status_id, location, address,
    zipcode, description, attributes, media_url, channel, service_notice, reporter_first_name,
    reporter_last_name, reporter_email, reporter_phone, reporter_device_id,
    reporter_account_id, routing, requested_at, updated_at, source, address_id)
SELECT 'bench-tiles-' || gen_random_uuid(), category_id, status_id,
       ST_Translate(location, random() * 0.01, random() * 0.01), '', '', '', '{}', '', 'api',
       '', '', '', '', '', '', '', '{}', now(), now(), %(source)s, ''
FROM geo311_servicerequest WHERE source = 'bench:synthetic_nyc' LIMIT 1
"""
    counted, uncounted = "bench:tiles_trigger", "bench:tiles_trigger_uncounted"
    delete = "DELETE FROM geo311_servicerequest WHERE source = %(source)s"

    def triggers_on(conn, on: bool) -> None:  # type: ignore[no-untyped-def]
        for t in triggers:
            conn.execute(
                f"ALTER TABLE geo311_servicerequest {'ENABLE' if on else 'DISABLE'} TRIGGER {t}"
            )

    out: dict = {}
    with raw_connection() as conn:
        try:
            for label in ("with_triggers", "without_triggers", "with_triggers_again"):
                with_triggers = label != "without_triggers"
                triggers_on(conn, with_triggers)
                source = counted if with_triggers else uncounted
                samples = []
                for _ in range(rows):
                    t0 = time.perf_counter()
                    conn.execute(insert, {"source": source})
                    samples.append(time.perf_counter() - t0)
                out[label] = latency_stats(samples, scale=1e3)
                if not with_triggers:  # never counted: removed with the triggers still off
                    conn.execute(delete, {"source": uncounted})
        finally:
            triggers_on(conn, True)
        conn.execute(delete, {"source": counted})
        # Each request is counted once per level: the per-cell totals of a level add up to
        # the table (the counts the tiles draw were left as they were found).
        ((requests, counted_once),) = conn.execute(
            "SELECT (SELECT count(*) FROM geo311_servicerequest),"
            " (SELECT sum(n) FROM maps_request_cell_total WHERE level = 17)"
        ).fetchall()
        if requests != counted_once:
            raise BenchError(f"tiles: {requests:,} requests, but {counted_once:,} counted")
    base = out["without_triggers"]["p50"]
    with_t = median([out["with_triggers"]["p50"], out["with_triggers_again"]["p50"]])
    out["added_ms_p50"] = round(with_t - base, 3)
    out["note"] = (
        "one-row INSERT in its own transaction (autocommit), psycopg, on the loaded table; "
        "the rows are removed after (those added without the triggers, without them)"
    )
    return out


class _Client:
    """GETs on loopback with libcurl (pycurl), one handle for the run: the least a client can add
    to the time it measures, as psycopg's C implementation is on the SQL side. Measured here on
    the same z16 tiles, http.client added 0.5-1.0 ms a request more (it builds each connection
    and parses each header block in Python), httpx 0.15-0.35 ms more than that. A sync worker
    closes the connection after each answer; curl opens the next one."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.body = io.BytesIO()
        self.headers: list[bytes] = []
        self.curl = pycurl.Curl()
        self.curl.setopt(pycurl.WRITEDATA, self.body)
        self.curl.setopt(pycurl.HEADERFUNCTION, self.headers.append)
        self.curl.setopt(pycurl.HTTPHEADER, ["Accept-Encoding: gzip"])
        self.curl.setopt(pycurl.TIMEOUT, 60)

    def get(self, path: str) -> tuple[int, dict[str, str]]:
        """(status, headers with lower-case names) of ``GET path``; the body is read and
        dropped."""
        self.body.seek(0)
        self.body.truncate()
        self.headers.clear()
        self.curl.setopt(pycurl.URL, self.base + path)
        self.curl.perform()
        status = self.curl.getinfo(pycurl.RESPONSE_CODE)
        headers = {}
        for line in self.headers:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return status, headers

    def close(self) -> None:
        self.curl.close()


# The floors under an API answer, each read once after every tile's API and SQL reads, under
# two gunicorn configurations: the sync workers the tiles are measured with (a new connection
# per answer) and gthread workers keeping the connection alive.
FLOORS = {
    "bare_gunicorn": "GET of a WSGI app that answers an empty 200 (bench.floor_wsgi), under "
    "gunicorn with the same sync workers, by the same client: the server and a new connection",
    "django_health": "GET /health of the geo311 server the tiles come from: Django with its "
    "middleware, one SELECT 1 and a small JSON answer",
    "bare_gunicorn_keepalive": "bare_gunicorn under gthread workers (2 threads each) keeping "
    "the connection alive",
    "django_health_keepalive": "django_health from geo311 under those gthread workers",
    "select_1": "SELECT 1 on the SQL side's connection: the round trip in django_health",
}
KEEP_ALIVE_ARGS = ["-k", "gthread", "--threads", "2", "--keep-alive", "5"]


class _Floors:
    """The servers and clients of FLOORS besides the measured geo311 server, and their reads."""

    def __init__(self, tmp: Path, geo311: _Client, conn: Any):
        workers = ["--workers", str(WORKERS)]
        bare_app = "bench.floor_wsgi:application"
        self.servers: list[Gunicorn] = []
        self.clients: list[_Client] = []
        try:
            for log_name, args, app in (
                ("bare.log", [*workers, "-k", "sync"], bare_app),
                ("bare-ka.log", [*workers, *KEEP_ALIVE_ARGS], bare_app),
                ("geo311-ka.log", [*workers, *KEEP_ALIVE_ARGS], "geo311.wsgi"),
            ):
                self.servers.append(Gunicorn(free_port(), tmp / log_name, args, app=app))
                self.servers[-1].wait_ready()
        except BaseException:
            self.close()
            raise
        bare, bare_ka, geo311_ka = (_Client(server.port) for server in self.servers)
        self.clients = [bare, bare_ka, geo311_ka]
        self.reads = {
            "bare_gunicorn": lambda: bare.get("/"),
            "django_health": lambda: geo311.get("/health"),
            "bare_gunicorn_keepalive": lambda: bare_ka.get("/"),
            "django_health_keepalive": lambda: geo311_ka.get("/health"),
            "select_1": lambda: conn.execute("SELECT 1").fetchone(),
        }
        self.samples: dict[str, list[float]] = {name: [] for name in FLOORS}

    def sample(self) -> None:
        for name, read in self.reads.items():
            t0 = time.perf_counter()
            read()
            self.samples[name].append(time.perf_counter() - t0)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop()


def _best_ratios(sql_p50: float, floor: dict) -> dict:
    """The API/SQL p50 ratio an answer would have if it cost its statement plus only a floor:
    ``bare_gunicorn``, what no view under gunicorn avoids; ``django``, what a Django view with
    one round trip adds besides the round trip (``django_health`` - ``select_1``); each also
    with the connection kept alive."""
    select_1 = floor["select_1"]["p50"]
    added = {
        "bare_gunicorn": floor["bare_gunicorn"]["p50"],
        "django": floor["django_health"]["p50"] - select_1,
        "bare_gunicorn_keepalive": floor["bare_gunicorn_keepalive"]["p50"],
        "django_keepalive": floor["django_health_keepalive"]["p50"] - select_1,
    }
    return {name: round((sql_p50 + ms) / sql_p50, 3) for name, ms in added.items()}


def _path(z: int, x: int, y: int) -> str:
    return f"/tiles/requests/{z}/{x}/{y}.mvt"


def run() -> dict:
    import psycopg
    from django.http import QueryDict

    from maps.sql_tiles import PLANNER_SETTINGS
    from maps.tiles import tile_statement

    data = ensure_requests()
    log(f"tiles: {data['requests']:,} requests, {data['cell_rows']:,} cell rows")
    tmp = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    server = start_server(tmp, cache=False, workers=WORKERS, worker_class="sync")
    client = _Client(server.port)
    query = QueryDict("")
    per_zoom: dict = {}
    floors = None
    try:
        with raw_connection(cursor_factory=psycopg.ClientCursor) as conn:
            # What any answer costs besides its statement, sampled beside every tile read so
            # that both see the same background load: see FLOORS.
            floors = _Floors(tmp, client, conn)
            conn.execute(PLANNER_SETTINGS)  # as maps.sql_tiles.fetch_tile runs them
            for z in ZOOMS:
                around = tiles_at(z)
                api: list[float] = []
                sql: list[float] = []
                features_bytes = []
                # Warm-up (caches of the OS and PostgreSQL), keeping the tiles with requests.
                tiles = [t for t in around if client.get(_path(*t))[0] == 200]
                for rnd in range(ROUNDS):
                    for _, x, y in tiles:
                        statement, params = tile_statement(
                            layer="requests", z=z, x=x, y=y, query=query
                        )
                        params = {"extent": 4096, "buffer": 64, **params}
                        # The second of two reads of a tile finds its pages in shared buffers
                        # (0.1-0.5 ms faster here): each goes first in every other round.
                        for step in ("api", "sql") if rnd % 2 == 0 else ("sql", "api"):
                            if step == "api":
                                t0 = time.perf_counter()
                                status, headers = client.get(_path(z, x, y))
                                api.append(time.perf_counter() - t0)
                                if status != 200:
                                    raise RuntimeError(f"{z}/{x}/{y}: {status}")
                                assert headers.get("x-tile-cache") == "miss"
                            else:
                                t0 = time.perf_counter()
                                row = conn.execute(statement, params).fetchone()
                                sql.append(time.perf_counter() - t0)
                                features_bytes.append(len(row[0] or b""))
                        floors.sample()
                a, s = latency_stats(api, scale=1e3), latency_stats(sql, scale=1e3)
                per_zoom[f"z{z}"] = {
                    "tiles": len(tiles),
                    "empty_tiles_left_out": len(around) - len(tiles),
                    "api_ms": a,
                    "sql_ms": s,
                    "ratio_p50": round(a["p50"] / s["p50"], 3),
                    "ratio_p99": round(a["p99"] / s["p99"], 3),
                    "tile_bytes_median": int(median(features_bytes)),
                    "source": "cell counts" if z <= 12 else "points",
                }
                log(f"z{z}: API p50 {a['p50']} ms p99 {a['p99']} ms; SQL p50 {s['p50']} ms")
            floor = {name: latency_stats(v, scale=1e3) for name, v in floors.samples.items()}
    finally:
        client.close()
        if floors is not None:
            floors.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for row in per_zoom.values():
        row["best_ratio_p50"] = _best_ratios(row["sql_ms"]["p50"], floor)
    log("floors p50 (ms): " + ", ".join(f"{name} {floor[name]['p50']}" for name in FLOORS))
    trigger = _trigger_cost()
    log(f"trigger cost: {trigger['added_ms_p50']} ms per one-row INSERT")
    ratios = [v["ratio_p50"] for v in per_zoom.values()]
    worst = max(ratios)
    low = max(per_zoom[f"z{z}"]["api_ms"]["p99"] for z in ZOOMS if z <= 12)
    return write_result(
        name=NAME,
        value=worst,
        unit="API/SQL p50 ratio (worst zoom)",
        baseline="bare ST_AsMVT statement (psycopg)",
        baseline_value=1.0,
        ratio=worst,
        goal=f"API/SQL <= {GOAL_RATIO} at every zoom; z <= 12 API p99 <= {GOAL_LOW_ZOOM_MS} ms",
        details={
            "per_zoom": per_zoom,
            "low_zoom_api_p99_ms": low,
            "low_zoom_goal_met": low <= GOAL_LOW_ZOOM_MS,
            "ratio_goal_met": worst <= GOAL_RATIO,
            "data": data,
            "server": f"gunicorn --workers {WORKERS} (sync), GEO311_TILE_CACHE=false",
            "client": "libcurl (pycurl), one request at a time, a new connection for each",
            "rounds": ROUNDS,
            "order": "each tile's API and SQL reads back to back, API first in even rounds",
            "trigger_cost": trigger,
            "floors_ms": floor,
            "floors": FLOORS,
        },
    )
