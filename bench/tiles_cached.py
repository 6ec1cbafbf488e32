"""tiles_cached: vector tiles per second served from the server-side tile cache.

gunicorn (``-k gthread --workers 2 --threads 4``, cache ON) on the bench database with the 1.2 M
synthetic NYC requests; the cache is filled first with the z12-z16 request tiles of
``bench.tiles`` (every one a hit after), then CLIENTS client processes, each with its own httpx
keep-alive client, fetch those tiles round-robin for SECONDS. value = tiles/s over all clients
(only 200s and 204s, every one a cache hit, are counted). The clients share the machine's two
cores with gunicorn and PostgreSQL (and with other work on it: see details.load).
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

from .common import latency_stats, log, write_result
from .tiles import ensure_requests, start_server, tiles_at

NAME = "tiles_cached"
CLIENTS = 4
SECONDS = 15.0
GOAL = 2000.0
ZOOMS = (16, 15, 14, 13, 12)


def _client(base: str, paths: list[str], seconds: float, offset: int, out) -> None:  # type: ignore[no-untyped-def]
    import httpx

    done = 0
    bad = 0
    samples: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        end = time.perf_counter() + seconds
        i = offset
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            response = client.get(paths[i % len(paths)])
            samples.append(time.perf_counter() - t0)
            i += 1
            if response.status_code in (200, 204) and response.headers["X-Tile-Cache"] == "hit":
                done += 1
            else:
                bad += 1
    out.put((done, bad, samples))


def run() -> dict:
    import httpx

    data = ensure_requests()
    paths = [f"/tiles/requests/{z}/{x}/{y}.mvt" for zoom in ZOOMS for z, x, y in tiles_at(zoom)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-tiles-cached-"))
    server = start_server(tmp, cache=True, workers=2, threads=4)
    base = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            t0 = time.perf_counter()
            for path in paths:
                client.get(path)
            fill_s = time.perf_counter() - t0
        log(f"tiles_cached: {len(paths)} tiles cached in {fill_s:.1f} s; {CLIENTS} clients")
        queue: multiprocessing.Queue = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=_client, args=(base, paths, SECONDS, i * 17, queue))
            for i in range(CLIENTS)
        ]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - t0
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    done = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    samples = [s for r in results for s in r[2]]
    rate = done / SECONDS
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
            "clients": CLIENTS,
            "seconds": SECONDS,
            "wall_s_with_process_start": round(wall, 2),
            "served_hits": done,
            "not_hits": bad,
            "latency_ms": latency_stats(samples, scale=1e3),
            "fill_s": round(fill_s, 2),
            "server": "gunicorn -k gthread --workers 2 --threads 4, GEO311_TILE_CACHE=true",
            "client": f"{CLIENTS} processes, one httpx keep-alive client each",
            "data": data,
        },
    )
