"""first_view: wall time of a typical first map view, 16 request tiles (the 4 x 4 z12 tiles
around Midtown, covering most of NYC), fetched in parallel over 6 connections as a browser does.

gunicorn (``-k gthread --workers 2 --threads 4``, tile cache ON) with the 1.2 M synthetic NYC
requests. Each run first moves the requests layer's generation, as a change of a request does,
so every tile is made again (the first viewer after the data changed, the slow case): RUNS
runs, value = the median wall ms. Also measured: the same view warm (every tile a cache hit).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import BenchError, log, median, raw_connection, write_result
from .tiles import ensure_requests, first_view_tiles, start_server

NAME = "first_view"
RUNS = 7
CONNECTIONS = 6
GOAL_MS = 300.0


def _view(client, paths: list[str]) -> tuple[float, list[tuple[int, str]]]:  # type: ignore[no-untyped-def]
    """ms for all of ``paths`` on CONNECTIONS connections; (status, X-Tile-Cache) of each."""

    def get(path: str) -> tuple[int, str]:
        response = client.get(path)
        return response.status_code, response.headers.get("X-Tile-Cache", "")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        answers = list(pool.map(get, paths))
    return (time.perf_counter() - t0) * 1e3, answers


def run() -> dict:
    import httpx

    data = ensure_requests()
    paths = [f"/tiles/requests/{z}/{x}/{y}.mvt" for z, x, y in first_view_tiles()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-first-view-"))
    server = start_server(tmp, cache=True, workers=2, threads=4)
    base = f"http://127.0.0.1:{server.port}"
    cold: list[float] = []
    warm: list[float] = []
    try:
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        with (
            httpx.Client(base_url=base, timeout=60, limits=limits) as client,
            raw_connection() as conn,
        ):
            _view(client, paths)  # warm-up: OS and PostgreSQL caches
            for _ in range(RUNS):
                conn.execute("SELECT maps_tile_bump('requests')")  # as a change would
                # The workers hear of it by notification (maps.sql_tiles.stamp), within
                # milliseconds: given that, every tile of the view is made afresh.
                time.sleep(0.1)
                ms, answers = _view(client, paths)
                if any(a != (200, "miss") and a != (204, "miss") for a in answers):
                    raise BenchError(f"first_view: a cold view was not all made afresh: {answers}")
                cold.append(ms)
                ms, answers = _view(client, paths)
                warm.append(ms)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    value = round(median(cold), 1)
    log(f"first_view: cold {cold}, warm {warm}")
    return write_result(
        name=NAME,
        value=value,
        unit="ms",
        baseline="goal",
        baseline_value=GOAL_MS,
        goal=f"<= {GOAL_MS:.0f} ms for 16 tiles, 6 connections, every tile made afresh",
        details={
            "tiles": [p.split("/tiles/")[1] for p in paths],
            "cold_ms": [round(v, 1) for v in cold],
            "warm_ms": [round(v, 1) for v in warm],
            "warm_median_ms": round(median(warm), 1),
            "connections": CONNECTIONS,
            "runs": RUNS,
            "server": "gunicorn -k gthread --workers 2 --threads 4, GEO311_TILE_CACHE=true",
            "data": data,
        },
    )
