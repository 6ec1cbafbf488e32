"""Tiles a process keeps in memory, outside a transaction as the tile view runs: served without
a query while nothing under them changed, and made afresh once a change commits, whether this
connection, another one or a change made while this process had no connection made it
(``maps.sql_tiles.stamp``: LISTEN on ``geo311_tiles``, migrations maps 0004 and 0005).

The web process is played by a thread of its own (as a threaded gunicorn worker serves): its
own database connection, outside the test's transaction, seeing the maps tests' committed city
(``chicago_requests``). Each test moves one committed request out of its tile and puts it
back."""

import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import mapbox_vector_tile
import psycopg
import pytest
from django.contrib.gis.geos import Point
from django.contrib.gis.measure import D
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from geo311.models import ServiceRequest
from maps import sql_tiles, tiles
from tests.maps.test_tiles import features, fetch, file, tile_xy, url
from tests.notifications.conftest import database_url, free_port, serve, stop

pytestmark = pytest.mark.django_db

Z = 16
AWAY = 0.01  # degrees east: out of the request's z16 tile (about 0.0055 degrees wide)
T = TypeVar("T")


def as_a_web_process(work: Callable[[], T]) -> T:
    """``work`` on a thread with its own connection (autocommit, committed data only), closed
    after."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def committed(chicago_requests: int, settings) -> Iterator[ServiceRequest]:  # type: ignore[no-untyped-def]
    """One committed request of the maps tests' city, found in its place again after the test;
    the tile cache on, listening on."""
    settings.GEO311_TILE_CACHE = True
    settings.GEO311_TILE_LISTEN = True
    request = ServiceRequest.objects.order_by("id").first()
    assert request is not None
    tiles._memory.clear()
    try:
        yield request
    finally:
        as_a_web_process(
            lambda: ServiceRequest.objects.filter(pk=request.pk).update(location=request.location)
        )
        tiles._memory.clear()


def ids(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {f["properties"]["public_id"] for f in features(response)}


def move(request: ServiceRequest, dx: float) -> Point:
    return Point(request.location.x + dx, request.location.y, srid=4326)


def commit_elsewhere(request: ServiceRequest, place: Point) -> None:
    """Move ``request`` to ``place`` on a connection of another process's kind, committed."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        autocommit=True,
    ) as other:
        other.execute(
            "UPDATE geo311_servicerequest SET location = ST_GeomFromEWKT(%s) WHERE id = %s",
            (place.ewkt, request.pk),
        )


def fetch_until_miss(client: Client, point: Point, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    """The notification of another connection's commit arrives within milliseconds; until it
    has, the tile kept in memory is served."""
    deadline = time.monotonic() + seconds
    while True:
        response = fetch(client, "requests", point, Z)
        if response["X-Tile-Cache"] == "miss" or time.monotonic() > deadline:
            return response
        time.sleep(0.01)


def test_a_tile_kept_in_memory_is_served_without_a_query_until_its_layer_changes(
    committed: ServiceRequest,
):
    place = committed.location

    def serve() -> None:
        client = Client()
        assert committed.public_id in ids(fetch(client, "requests", place, Z))
        fetch(client, "requests", place, Z)  # from memory: LISTEN, the number read
        with CaptureQueriesContext(connection) as queries:
            for _ in range(3):
                hit = fetch(client, "requests", place, Z)
                assert hit["X-Tile-Cache"] == "hit"
                assert committed.public_id in ids(hit)
        assert len(queries) == 0, queries.captured_queries

        # This connection's own change: its notification comes in with the commit.
        ServiceRequest.objects.filter(pk=committed.pk).update(location=move(committed, AWAY))
        gone = fetch(client, "requests", place, Z)
        assert gone["X-Tile-Cache"] == "miss"
        assert committed.public_id not in ids(gone)

        # Another process's change, heard when it arrives.
        commit_elsewhere(committed, place)
        back = fetch_until_miss(client, place)
        assert back["X-Tile-Cache"] == "miss"
        assert committed.public_id in ids(back)
        with CaptureQueriesContext(connection) as queries:
            assert fetch(client, "requests", place, Z)["X-Tile-Cache"] == "hit"
        assert len(queries) == 0, queries.captured_queries

    as_a_web_process(serve)


def test_a_change_made_while_the_process_had_no_connection_is_not_missed(
    committed: ServiceRequest,
):
    place = committed.location

    def serve() -> None:
        client = Client()
        assert committed.public_id in ids(fetch(client, "requests", place, Z))
        assert fetch(client, "requests", place, Z)["X-Tile-Cache"] == "hit"
        connection.close()  # CONN_MAX_AGE, a restart of PostgreSQL, ...
        commit_elsewhere(committed, move(committed, AWAY))
        # A new connection reads the number before it trusts what it hears.
        gone = fetch(client, "requests", place, Z)
        assert gone["X-Tile-Cache"] == "miss"
        assert committed.public_id not in ids(gone)

    as_a_web_process(serve)


def test_a_change_in_another_area_leaves_the_tiles_kept_in_memory(committed: ServiceRequest):
    place = committed.location
    far = ServiceRequest.objects.filter(location__distance_gte=(place, D(km=15))).first()
    assert far is not None

    def serve() -> None:
        client = Client()
        fetch(client, "requests", place, Z)
        fetch(client, "requests", place, Z)  # from memory: LISTEN, the numbers read
        commit_elsewhere(far, move(far, AWAY))
        # Heard: the next tile reads its layer's area numbers again, and keeps its tile.
        deadline = time.monotonic() + 10
        while True:
            with CaptureQueriesContext(connection) as queries:
                response = fetch(client, "requests", place, Z)
            if [q["sql"] for q in queries] == [sql_tiles.AREAS] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert [q["sql"] for q in queries] == [sql_tiles.AREAS]
        assert response["X-Tile-Cache"] == "hit"
        assert committed.public_id in ids(response)

    try:
        as_a_web_process(serve)
    finally:
        commit_elsewhere(far, far.location)


def test_with_listening_off_the_stamp_is_read_for_every_tile(committed: ServiceRequest, settings):
    settings.GEO311_TILE_LISTEN = False  # behind a pooler that cannot LISTEN

    def serve() -> list[str]:
        client = Client()
        fetch(client, "requests", committed.location, Z)
        with CaptureQueriesContext(connection) as queries:
            assert fetch(client, "requests", committed.location, Z)["X-Tile-Cache"] == "hit"
        return [q["sql"] for q in queries]

    assert as_a_web_process(serve) == [sql_tiles.STAMP]


def test_in_a_transaction_the_stamp_is_read_for_every_tile(committed: ServiceRequest):
    """A transaction may hold its own uncommitted change, which nothing announces yet (the
    test's transaction here, as ATOMIC_REQUESTS views have)."""
    client = Client()
    place = committed.location
    fetch(client, "requests", place, Z)
    assert connection.in_atomic_block
    with CaptureQueriesContext(connection) as queries:
        assert fetch(client, "requests", place, Z)["X-Tile-Cache"] == "hit"
    assert [q["sql"] for q in queries] == [sql_tiles.STAMP]
    # (A new request beside it: moving the committed one would hold its row until the end.)
    beside = file(place)
    again = fetch(client, "requests", place, Z)
    assert again["X-Tile-Cache"] == "miss"
    assert {committed.public_id, beside.public_id} <= ids(again)


def test_gunicorn_workers_stop_serving_the_tiles_they_keep_once_a_change_commits(
    committed: ServiceRequest,
):
    """The real thing: two sync workers, each keeping the tile in memory, and a change
    committed by another process; within moments every answer has it."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "geo311.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "60",
        "GEO311_TILE_CACHE": "true",
        "GEO311_TILE_LISTEN": "true",
    }
    command = [sys.executable, "-m", "gunicorn", "geo311.wsgi", "-b", f"127.0.0.1:{port}"]
    server = serve([*command, "--workers", "2"], env, port)
    tile = f"http://127.0.0.1:{port}" + url("requests", Z, *tile_xy(committed.location, Z))

    def drawn(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        decoded = mapbox_vector_tile.decode(
            response.content, default_options={"y_coord_down": True}
        )
        return {f["properties"]["public_id"] for f in decoded["requests"]["features"]}

    try:
        with httpx.Client(timeout=30) as http:
            before = [http.get(tile) for _ in range(20)]
            assert all(committed.public_id in drawn(r) for r in before)
            assert {r.headers["X-Tile-Cache"] for r in before[-10:]} == {"hit"}

            commit_elsewhere(committed, move(committed, AWAY))
            deadline = time.monotonic() + 10
            in_a_row = 0
            while in_a_row < 20 and time.monotonic() < deadline:
                shown = committed.public_id in drawn(http.get(tile))
                in_a_row = 0 if shown else in_a_row + 1
            assert in_a_row == 20, "a worker kept serving the tile from before the change"
    finally:
        stop(server)


def test_an_area_sum_walks_the_range_or_the_known_areas_with_the_same_result():
    known = {(ax, ay): ax * 10 + ay for ax in range(3, 9) for ay in range(2, 5)}
    for areas in [(4, 4, 3, 3), (4, 5, 3, 4), (0, 20, 0, 20), (5, 40, 0, 3), (50, 60, 50, 60)]:
        ax0, ax1, ay0, ay1 = areas
        expected = sum(n for (ax, ay), n in known.items() if ax0 <= ax <= ax1 and ay0 <= ay <= ay1)
        assert sql_tiles._areas_sum(known, areas) == expected
