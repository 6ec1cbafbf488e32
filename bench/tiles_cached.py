"""tiles_cached: vector tiles per second served from the server-side tile cache.

gunicorn (3 sync workers, as ``make run`` serves; cache ON) on the bench database
with the 1.2 M synthetic NYC requests; the cache is filled first with the z12-z16 request tiles
of ``bench.tiles`` (every one a hit after), then wrk (``bench.common.wrk_load``, CONNECTIONS
connections, asking as a browser's map does, gzip accepted) fetches those tiles round-robin,
RUNS runs of SECONDS. value = tiles/s of the median run, counting only 200s and 204s that were
cache hits (``X-Tile-Cache: hit``). wrk shares the machine's two cores with gunicorn and
PostgreSQL (and with other work on it: see details.load).

details.under_writes: the same load, one run per rate of WRITE_RATES, while another connection
commits changes to one request of the city; each moves the number of the request's area
(migration maps 0005), so the tiles over that area are made afresh once after it, and the
others stay cached.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .common import BenchError, log, median_run, raw_connection, write_result, wrk_load
from .tiles import ensure_requests, start_server, tiles_at

NAME = "tiles_cached"
WORKERS = 3  # as make run serves (scripts/serve.sh)
CONNECTIONS = 4
SECONDS = 10.0
RUNS = 5
GOAL = 2000.0
ZOOMS = (16, 15, 14, 13, 12)
# Changes under the tiles per second, each its own run: New York files about 0.1 request a
# second, and staff move each through a few statuses.
WRITE_RATES = (0.2, 1.0)


def _with_writes(rate: float, load: Callable[[], dict]) -> dict:
    """``load`` while another connection commits ``rate`` changes a second under the tiles (one
    request moved 1 m and back, so the data ends as it began): each moves the number of the
    request's area, so every process makes the tiles over that area afresh once after it
    (heard by notification). tiles/s counts every 200 and 204, hits and fresh ones."""
    stop = threading.Event()
    commits = 0

    def write() -> None:
        nonlocal commits
        with raw_connection() as conn:
            (request,) = conn.execute(
                "SELECT id FROM geo311_servicerequest WHERE source = 'bench:synthetic_nyc'"
                " ORDER BY id LIMIT 1"
            ).fetchone()
            move = "UPDATE geo311_servicerequest SET location = ST_Translate(location, %s, 0)"
            while not stop.is_set() or commits % 2:
                conn.execute(
                    move + " WHERE id = %s", (1e-5 if commits % 2 == 0 else -1e-5, request)
                )
                commits += 1
                time.sleep(1 / rate)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        run = load()
    finally:
        stop.set()
        writer.join()
    served = sum(n for status, n in run["statuses"].items() if status in ("200", "204"))
    return {
        "writes_per_s": rate,
        "commits": commits,
        "tiles_per_s": round(served / run["seconds"], 1),
        "hits_per_s": round(run["header_matched"] / run["seconds"], 1),
        "hit_share": round(run["header_matched"] / max(run["requests"], 1), 3),
        "statuses": run["statuses"],
        "latency_ms": run["latency_ms"],
    }


def run() -> dict:
    import httpx

    data = ensure_requests()
    paths = [f"/tiles/requests/{z}/{x}/{y}.mvt" for zoom in ZOOMS for z, x, y in tiles_at(zoom)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-tiles-cached-"))
    server = start_server(tmp, cache=True, workers=WORKERS, worker_class="sync")
    base = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            t0 = time.perf_counter()
            for path in paths:
                client.get(path)
            fill_s = time.perf_counter() - t0
        log(f"tiles_cached: {len(paths)} tiles cached in {fill_s:.1f} s; wrk, {CONNECTIONS} conns")
        # As a browser's map asks: gzip accepted (a cached tile is kept compressed as well).
        ask = {"Accept": "application/vnd.mapbox-vector-tile", "Accept-Encoding": "gzip"}
        hit = ("X-Tile-Cache", "hit")
        load = {"connections": CONNECTIONS, "header": hit, "headers": ask}
        wrk_load(server.port, paths, seconds=3, **load)  # warm-up
        runs = [wrk_load(server.port, paths, seconds=SECONDS, **load) for _ in range(RUNS)]
        under_writes = [
            _with_writes(per_s, lambda: wrk_load(server.port, paths, seconds=SECONDS, **load))
            for per_s in WRITE_RATES
        ]
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for run in runs:
        # Hits are answered 200 (a tile) or 204 (an empty one); anything else fails the run.
        if set(run["statuses"]) - {"200", "204"}:
            raise BenchError(f"tiles_cached: answers other than 200/204: {run['statuses']}")
        run["served_hits"] = run["header_matched"]
        run["tiles_per_s"] = round(run["served_hits"] / run["seconds"], 1)
    middle = median_run(runs, "tiles_per_s")
    rate = middle["tiles_per_s"]
    return write_result(
        name=NAME,
        value=round(rate, 1),
        unit="tiles/s",
        baseline="goal",
        baseline_value=GOAL,
        goal=f">= {GOAL:.0f} tiles/s from the cache",
        details={
            "tiles": len(paths),
            "zooms": list(ZOOMS),
            "runs_tiles_per_s": [run["tiles_per_s"] for run in runs],
            "seconds": SECONDS,
            "served_hits": sum(run["served_hits"] for run in runs),
            "not_hits": sum(run["requests"] - run["served_hits"] for run in runs),
            "latency_ms": middle["latency_ms"],
            "statuses": middle["statuses"],
            "mb_per_s": middle["mb_per_s"],
            "request_headers": ask,
            "fill_s": round(fill_s, 2),
            "under_writes": under_writes,
            "server": f"gunicorn --workers {WORKERS} (sync), GEO311_TILE_CACHE=true",
            "client": middle["client"],
            "data": data,
        },
    )
