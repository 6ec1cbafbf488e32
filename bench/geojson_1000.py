"""geojson_1000: a GeoJSON FeatureCollection of 1,000 requests written by the database against
the same 1,000 requests through drf-gis's ``GeoFeatureModelSerializer``.

Both paths are measured at function level, in one process on one Django connection, from the
query to the finished body bytes (what a view hands to the response), over the same rows (the
first 1,000 requests by id of Chicago's 2011-2014 sanitation complaints, imported as
``duplicates_chicago`` imports them), with the same public properties:

- database: ``maps.features.requests_page`` (one statement: json_build_object / json_agg /
  ST_AsGeoJSON, the page comes back as bytes) and ``feature_collection`` around it;
- serializer: ``maps.features.RequestFeatureSerializer(many=True)`` over
  ``request_features_queryset()[:1000]`` (one query, related rows joined) and DRF's
  ``JSONRenderer``.

The two bodies are checked to hold the same features before timing. REPEATS rounds, the two
paths alternating after WARMUP rounds; the value is the database path's median, the baseline
the serializer's median; ratio = database / serializer (goal ≤ 0.1).
"""

from __future__ import annotations

import gc
import json
import time

from .common import BenchError, data_path, log, median, write_result
from .duplicates_chicago import CSV_PATH, ensure_chicago

NAME = "geojson_1000"
FEATURES = 1_000
REPEATS = 30
WARMUP = 3
GOAL_RATIO = 0.1


def _database_body() -> bytes:
    from maps import features

    page = features.requests_page(filters=features.RequestFilters(), limit=FEATURES)
    return features.feature_collection(page, numberReturned=page.returned)


def _serializer_body() -> bytes:
    from rest_framework.renderers import JSONRenderer

    from maps.features import RequestFeatureSerializer, request_features_queryset

    rows = request_features_queryset()[:FEATURES]
    data = RequestFeatureSerializer(rows, many=True).data
    return JSONRenderer().render(data)


def _same_features(ours: list[dict], theirs: list[dict]) -> bool:
    """Equal features; coordinates within a unit of their 6th decimal (PostGIS and Python round
    a float's last printed digit each their own way)."""

    def close(a: dict, b: dict) -> bool:
        (ax, ay), (bx, by) = a["geometry"]["coordinates"], b["geometry"]["coordinates"]
        rest_a = {k: v for k, v in a.items() if k != "geometry"}
        rest_b = {k: v for k, v in b.items() if k != "geometry"}
        return rest_a == rest_b and abs(ax - bx) <= 1.5e-6 and abs(ay - by) <= 1.5e-6

    return len(ours) == len(theirs) and all(map(close, ours, theirs))


def _timed(body: callable) -> tuple[float, int]:  # type: ignore[valid-type]
    gc.collect()
    t0 = time.perf_counter()
    out = body()  # type: ignore[operator]
    return time.perf_counter() - t0, len(out)


def run() -> dict:
    from django.db import connection

    _source, done = ensure_chicago(data_path(*CSV_PATH))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo311_servicerequest")
        (rows,) = cursor.fetchone()
    if rows < FEATURES:
        raise BenchError(f"the bench database holds {rows} requests, fewer than {FEATURES}")

    database = json.loads(_database_body())["features"]
    serializer = json.loads(_serializer_body())["features"]
    if len(database) != FEATURES or not _same_features(database, serializer):
        raise BenchError("the two paths do not give the same 1,000 features; fix that first")

    times: dict[str, list[float]] = {"database": [], "serializer": []}
    sizes: dict[str, int] = {}
    for round_no in range(WARMUP + REPEATS):
        order = [("database", _database_body), ("serializer", _serializer_body)]
        if round_no % 2:
            order.reverse()
        for name, body in order:
            seconds, size = _timed(body)
            sizes[name] = size
            if round_no >= WARMUP:
                times[name].append(seconds)
    db_ms = round(median(times["database"]) * 1e3, 3)
    ser_ms = round(median(times["serializer"]) * 1e3, 3)
    log(f"{FEATURES} features: database {db_ms} ms, drf-gis serializer {ser_ms} ms")
    return write_result(
        name=NAME,
        value=db_ms,
        unit="ms",
        baseline="drf-gis GeoFeatureModelSerializer + JSONRenderer, same rows and properties",
        baseline_value=ser_ms,
        ratio=db_ms / ser_ms,
        goal=f"ratio (database / serializer) ≤ {GOAL_RATIO}",
        details={
            "level": "function: from the query to the body bytes, in one process, no HTTP",
            "features": FEATURES,
            "requests_in_table": rows,
            "repeats": REPEATS,
            "warmup": WARMUP,
            "database_ms": {
                "median": db_ms,
                "min": round(min(times["database"]) * 1e3, 3),
                "max": round(max(times["database"]) * 1e3, 3),
            },
            "serializer_ms": {
                "median": ser_ms,
                "min": round(min(times["serializer"]) * 1e3, 3),
                "max": round(max(times["serializer"]) * 1e3, 3),
            },
            "body_bytes": sizes,
            "same_features": True,
            "city": done,
            "note": "2 shared cores, other helpers' tests and benchmarks running: medians",
        },
    )


def main() -> int:
    from .common import setup

    setup()
    run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
