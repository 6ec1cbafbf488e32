"""Vector tiles of requests, boundaries and hot spots: the features a tile holds (decoded with
mapbox_vector_tile, and read by GDAL's MVT driver), edges, the cap, filters, privacy, the cell
counts kept by triggers, and the tile cache with its ETags."""

import gzip
import math
import subprocess
import weakref
from collections import Counter
from pathlib import Path

import mapbox_vector_tile
import pytest
from django.contrib.gis.geos import MultiPolygon, Point, Polygon
from django.db import connection
from django.test import Client
from django.utils import timezone

from geo311.models import ServiceCategory, ServiceRequest, Status
from geo311.privacy import public_point
from geo311.services import Actor, Reporter, request_create, request_move, request_transition
from maps import sql_tiles, tiles
from maps.models import AnalysisRun, HotspotCell

pytestmark = pytest.mark.django_db


@pytest.fixture
def chicago_city(chicago_requests: int, db: None) -> None:
    """The maps tests' city (``chicago_requests``: its layers, configuration and imported
    complaints, committed for the package), without its requests for the length of a test:
    TRUNCATE in the test's transaction, undone with it. These tests count the requests they
    file."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE geo311_servicerequest CASCADE")


LOOP = Point(-87.6298, 41.8781, srid=4326)
REQUEST_PROPERTIES = {"public_id", "service_code", "status", "open311_status", "requested_at"}


def tile_xy(point: Point, z: int) -> tuple[int, int]:
    n = 2**z
    lat = math.radians(point.y)
    x = int((point.x + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(lat)) / math.pi) / 2 * n)
    return x, y


def tile_west(x: int, z: int) -> float:
    return x / 2**z * 360 - 180


def tile_north(y: int, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**z))))


def url(layer: str, z: int, x: int, y: int, query: str = "") -> str:
    return f"/tiles/{layer}/{z}/{x}/{y}.mvt" + (f"?{query}" if query else "")


def fetch(client: Client, layer: str, point: Point, z: int, query: str = "", etag: str = ""):  # type: ignore[no-untyped-def]
    x, y = tile_xy(point, z)
    headers = {"If-None-Match": etag} if etag else {}
    return client.get(url(layer, z, x, y, query), headers=headers)


def features(response, layer: str = "requests") -> list[dict]:  # type: ignore[no-untyped-def]
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/vnd.mapbox-vector-tile"
    decoded = mapbox_vector_tile.decode(response.content, default_options={"y_coord_down": True})
    return decoded[layer]["features"] if layer in decoded else []


def file(point: Point, code: str = "SIDEWALK", reporter: Reporter | None = None) -> ServiceRequest:
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        reporter=reporter,
    )


def offset(point: Point, dx_m: float, dy_m: float) -> Point:
    moved = point.transform(3857, clone=True)
    return Point(moved.x + dx_m, moved.y + dy_m, srid=3857).transform(4326, clone=True)


def fresh_cells() -> set[tuple]:
    """The cell counts made from scratch, to compare with the ones the triggers keep."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT k.level, k.cx, k.cy, r.category_id, r.status_id, k.month, count(*)
            FROM geo311_servicerequest r
            JOIN geo311_servicecategory c ON c.id = r.category_id
            CROSS JOIN LATERAL maps_request_cell_keys(r.location, r.requested_at, c.sensitive) k
            GROUP BY 1, 2, 3, 4, 5, 6"""
        )
        return set(cursor.fetchall())


def kept_cells() -> set[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT level, cx, cy, category_id, status_id, month, n FROM maps_request_cell"
            " WHERE n <> 0"
        )
        return set(cursor.fetchall())


def assert_counts_current() -> None:
    """The counts the triggers keep, per cell, category, status and month and per cell
    (what unfiltered low-zoom tiles read), are the ones made from scratch."""
    fresh = fresh_cells()
    assert kept_cells() == fresh
    totals: Counter[tuple] = Counter()
    for level, cx, cy, *_, n in fresh:
        totals[(level, cx, cy)] += n
    with connection.cursor() as cursor:
        cursor.execute("SELECT level, cx, cy, n FROM maps_request_cell_total WHERE n <> 0")
        assert set(cursor.fetchall()) == {(*cell, n) for cell, n in totals.items()}


def test_a_tile_holds_the_requests_inside_it_with_public_properties_only(chicago_city):
    reporter = Reporter(first_name="Zebedee", email="zebedee.q@example.org", phone="+13125550199")
    near = file(LOOP, reporter=reporter)
    far = file(Point(-87.70, 41.95, srid=4326))
    found = features(fetch(Client(), "requests", LOOP, 16))
    ids = {f["properties"]["public_id"] for f in found}
    assert near.public_id in ids
    assert far.public_id not in ids
    mine = next(f for f in found if f["properties"]["public_id"] == near.public_id)
    assert set(mine["properties"]) == REQUEST_PROPERTIES
    assert mine["properties"]["service_code"] == "SIDEWALK"
    assert mine["properties"]["status"] == "submitted"
    assert mine["properties"]["open311_status"] == "open"
    assert mine["geometry"]["type"] == "Point"
    body = fetch(Client(), "requests", LOOP, 16).content
    for secret in (b"Zebedee", b"zebedee.q", b"5550199"):
        assert secret not in body


def test_a_request_just_across_the_tile_edge_is_drawn_in_the_buffer(chicago_city):
    z = 16
    x, y = tile_xy(LOOP, z)
    west = tile_west(x, z)
    # 5 m west of the tile's west edge: in the tile to the west, and in this one's buffer.
    inside_lat = (tile_north(y, z) + tile_north(y + 1, z)) / 2
    edge = offset(Point(west, inside_lat, srid=4326), -5, 0)
    request = file(edge)
    response = Client().get(url("requests", z, x, y))
    drawn = [f for f in features(response) if f["properties"]["public_id"] == request.public_id]
    assert len(drawn) == 1
    tile_x = drawn[0]["geometry"]["coordinates"][0]
    assert -64 <= tile_x < 0
    beyond = offset(Point(west, inside_lat, srid=4326), -200, 0)  # far past the 64-unit buffer
    far = file(beyond)
    again = Client().get(url("requests", z, x, y))
    assert far.public_id not in {f["properties"]["public_id"] for f in features(again)}


def test_features_per_tile_are_capped(chicago_city, settings):
    settings.GEO311_TILE_MAX_FEATURES = 3
    for i in range(5):
        file(offset(LOOP, i * 10, 0))
    assert len(features(fetch(Client(), "requests", LOOP, 16))) == 3
    settings.GEO311_TILE_MAX_FEATURES = 20000
    assert len(features(fetch(Client(), "requests", LOOP, 16))) == 5


def test_requests_are_filtered_by_category_status_and_date(chicago_city):
    sidewalk = file(LOOP)
    tree = file(offset(LOOP, 20, 0), code="TREE_TRIM")
    request_transition(request=tree, status=Status.objects.get(code="acknowledged"), actor=Actor())

    def ids(query: str) -> set[str]:
        return {
            f["properties"]["public_id"]
            for f in features(fetch(Client(), "requests", LOOP, 16, query))
        }

    assert ids("service_code=TREE_TRIM") == {tree.public_id}
    assert ids("service_code=TREE_TRIM,SIDEWALK") == {tree.public_id, sidewalk.public_id}
    assert ids("service_code=TREE_TRIM&service_code=SIDEWALK") == {
        tree.public_id,
        sidewalk.public_id,
    }
    assert ids("status=acknowledged") == {tree.public_id}
    assert ids("status=open") == {tree.public_id, sidewalk.public_id}
    assert ids("status=closed") == set()
    # Dates are the city's (America/Chicago): after 18:00 there, UTC is already tomorrow.
    today = timezone.localtime(sidewalk.requested_at).date()
    assert ids(f"from={today}") == {tree.public_id, sidewalk.public_id}
    assert ids("to=2001-01-31") == set()


def test_a_sensitive_request_is_drawn_at_its_cell_centre(chicago_city):
    noise = file(LOOP, code="NOISE")
    z = 18
    found = features(fetch(Client(), "requests", public_point(LOOP, True), z))
    drawn = next(f for f in found if f["properties"]["public_id"] == noise.public_id)
    x, y = tile_xy(public_point(LOOP, True), z)
    # The tile point from the public point, in tile units (4096 across the tile).
    public = public_point(LOOP, True).transform(3857, clone=True)
    size = 40075016.685578488 / 2**z
    expected = (
        round((public.x - (x * size - 20037508.342789244)) / size * 4096),
        round(((20037508.342789244 - y * size) - public.y) / size * 4096),
    )
    got = tuple(drawn["geometry"]["coordinates"])
    assert got == pytest.approx(expected, abs=1)
    exact = LOOP.transform(3857, clone=True)
    exact_tile = (
        (exact.x - (x * size - 20037508.342789244)) / size * 4096,
        ((20037508.342789244 - y * size) - exact.y) / size * 4096,
    )
    assert math.dist(got, exact_tile) > 10  # not the exact point (~0.6 m per unit at z18)


def drawn_cells(found: list[dict]) -> list[tuple]:
    return sorted((str(f["geometry"]["coordinates"]), f["properties"]["count"]) for f in found)


def test_low_zoom_tiles_draw_cell_counts(chicago_city):
    for i in range(4):
        file(offset(LOOP, i * 15, 0))
    file(offset(LOOP, 0, 15), code="TREE_TRIM")
    for z in (12, 10, 6):
        found = features(fetch(Client(), "requests", LOOP, z))
        assert sum(f["properties"]["count"] for f in found) == 5, z
        assert all(set(f["properties"]) == {"count"} for f in found)
        assert all(f["geometry"]["type"] == "Polygon" for f in found)
        tree = features(fetch(Client(), "requests", LOOP, z, "service_code=TREE_TRIM"))
        assert sum(f["properties"]["count"] for f in tree) == 1
        # Unfiltered tiles read the per-cell sums; naming every category reads the counts.
        both = features(fetch(Client(), "requests", LOOP, z, "service_code=SIDEWALK,TREE_TRIM"))
        assert drawn_cells(both) == drawn_cells(found)
        assert features(fetch(Client(), "requests", LOOP, z, "status=closed")) == []


def test_cell_counts_follow_inserts_updates_and_deletes(chicago_city):
    assert_counts_current()
    made = [file(offset(LOOP, i * 400, 0)) for i in range(3)]
    noise = file(offset(LOOP, 0, 300), code="NOISE")
    assert_counts_current()
    request_transition(
        request=made[0], status=Status.objects.get(code="acknowledged"), actor=Actor()
    )
    request_move(request=made[1], actor=Actor(), location=offset(LOOP, -5000, 2000))
    assert_counts_current()
    ServiceRequest.objects.filter(pk=made[2].pk).update(
        category=ServiceCategory.objects.get(service_code="TREE_TRIM")
    )
    ServiceRequest.objects.filter(pk=noise.pk).delete()
    assert_counts_current()
    # A category turning sensitive moves its requests to their public points.
    ServiceCategory.objects.filter(service_code="SIDEWALK").update(sensitive=True)
    assert_counts_current()
    ServiceRequest.objects.all().delete()
    assert kept_cells() == set()
    assert_counts_current()


def test_tiles_are_cached_revalidated_and_invalidated_by_changes(chicago_city):
    client = Client()
    first = file(LOOP)
    miss = fetch(client, "requests", LOOP, 16)
    assert miss["X-Tile-Cache"] == "miss"
    assert miss["Cache-Control"] == "public, max-age=60"
    hit = fetch(client, "requests", LOOP, 16)
    assert hit["X-Tile-Cache"] == "hit"
    assert hit.content == miss.content
    assert hit["ETag"] == miss["ETag"]
    tiles._memory.clear()  # another process: the tile comes from the table
    from_table = fetch(client, "requests", LOOP, 16)
    assert from_table["X-Tile-Cache"] == "hit"
    assert from_table.content == miss.content
    not_modified = fetch(client, "requests", LOOP, 16, etag=miss["ETag"])
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    second = file(offset(LOOP, 10, 10))
    changed = fetch(client, "requests", LOOP, 16, etag=miss["ETag"])
    assert changed.status_code == 200
    assert changed["X-Tile-Cache"] == "miss"
    assert changed["ETag"] != miss["ETag"]
    ids = {f["properties"]["public_id"] for f in features(changed)}
    assert ids == {first.public_id, second.public_id}
    low = fetch(client, "requests", LOOP, 10)
    assert fetch(client, "requests", LOOP, 10)["X-Tile-Cache"] == "hit"
    ServiceRequest.objects.filter(pk=second.pk).delete()
    after = fetch(client, "requests", LOOP, 10)
    assert after["X-Tile-Cache"] == "miss"
    assert sum(f["properties"]["count"] for f in features(after)) == 1
    assert sum(f["properties"]["count"] for f in features(low)) == 2


def test_a_change_makes_afresh_only_the_tiles_over_its_area(chicago_city):
    """Request tiles are stamped by area (z12 tiles, migration maps 0005): a request filed
    15 km away leaves a z16 tile cached; the z10 tile over both is made again."""
    client = Client()
    near = file(LOOP)
    assert fetch(client, "requests", LOOP, 16)["X-Tile-Cache"] == "miss"
    assert fetch(client, "requests", LOOP, 10)["X-Tile-Cache"] == "miss"
    away = offset(LOOP, 0, -15_000)
    assert sql_tiles.area_range(16, *tile_xy(LOOP, 16)) != sql_tiles.area_range(
        16, *tile_xy(away, 16)
    )
    file(away)
    kept = fetch(client, "requests", LOOP, 16)
    assert kept["X-Tile-Cache"] == "hit"
    assert {f["properties"]["public_id"] for f in features(kept)} == {near.public_id}
    low = fetch(client, "requests", LOOP, 10)
    assert low["X-Tile-Cache"] == "miss"
    assert sum(f["properties"]["count"] for f in features(low)) == 2


def test_a_change_in_the_next_area_within_a_tiles_buffer_makes_it_afresh(chicago_city):
    """A z16 tile at the east edge of its area draws, in its buffer, requests of the next
    area: their changes stamp it too."""
    z = 16
    ax0, ax1, _, _ = sql_tiles.area_range(z, *tile_xy(LOOP, z))
    _, y = tile_xy(LOOP, z)
    x = (ax0 + 1) * 2 ** (z - sql_tiles.AREA_ZOOM) - 1  # the last column of LOOP's area
    assert sql_tiles.area_range(z, x, y)[:2] == (ax0, ax0 + 1)
    east = tile_west(x + 1, z)
    lat = (tile_north(y, z) + tile_north(y + 1, z)) / 2
    beside = file(offset(Point(east, lat, srid=4326), 3, 0))  # 3 m into the next area
    client = Client()
    first = client.get(url("requests", z, x, y))
    assert {f["properties"]["public_id"] for f in features(first)} == {beside.public_id}
    assert client.get(url("requests", z, x, y))["X-Tile-Cache"] == "hit"
    ServiceRequest.objects.filter(pk=beside.pk).update(
        location=offset(Point(east, lat, srid=4326), 500, 0)  # out of the buffer
    )
    again = client.get(url("requests", z, x, y))
    assert again["X-Tile-Cache"] == "miss"
    assert features(again) == []


def test_a_statement_over_many_areas_moves_the_whole_layer(chicago_city):
    """A bulk statement (an import) over more than 256 areas moves the layer's generation
    instead of each area's number."""
    request = file(LOOP)

    def numbers() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT generation FROM maps_tile_generation WHERE layer = 'requests'),"
                " (SELECT count(*) FROM maps_tile_area WHERE layer = 'requests')"
            )
            return cursor.fetchone()

    generation, areas = numbers()
    with connection.cursor() as cursor:
        # 300 requests 0.1 degree apart along a parallel: 300 areas.
        cursor.execute(
            "INSERT INTO geo311_servicerequest (token, category_id, status_id, location,"
            " address, zipcode, description, attributes, media_url, channel, service_notice,"
            " reporter_first_name, reporter_last_name, reporter_email, reporter_phone,"
            " reporter_device_id, reporter_account_id, routing, requested_at, updated_at,"
            " source, address_id)"
            " SELECT 'areas-' || g, category_id, status_id,"
            " ST_SetSRID(ST_MakePoint(-120 + g * 0.1, 41.88), 4326), '', '', '', '{}', '',"
            " 'api', '', '', '', '', '', '', '', '{}', now(), now(), 'test', ''"
            " FROM geo311_servicerequest, generate_series(1, 300) g WHERE id = %s",
            [request.pk],
        )
    after, areas_after = numbers()
    assert after > generation
    assert areas_after == areas
    assert_counts_current()


def test_cached_tiles_go_gzip_compressed_to_clients_that_take_gzip(chicago_city):
    client = Client()
    file(LOOP)
    file(offset(LOOP, 20, 5))
    x, y = tile_xy(LOOP, 16)
    gzip_please = {"Accept-Encoding": "gzip, deflate, br"}
    miss = client.get(url("requests", 16, x, y), headers=gzip_please)
    plain = client.get(url("requests", 16, x, y))
    tiles._memory.clear()  # another process: from the table, compressed on the way out
    hit = client.get(url("requests", 16, x, y), headers=gzip_please)
    assert (miss["X-Tile-Cache"], plain["X-Tile-Cache"], hit["X-Tile-Cache"]) == (
        "miss",
        "hit",
        "hit",
    )
    assert "Content-Encoding" not in plain
    assert len(features(plain)) == 2
    for response in (miss, hit):
        assert response["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.content) == plain.content
        assert len(response.content) < len(plain.content)
        # Another encoding of the same tile: the weak form of its ETag.
        assert response["ETag"] == "W/" + plain["ETag"]
    for response in (miss, plain, hit):
        assert "Accept-Encoding" in response["Vary"]
    for etag in (plain["ETag"], hit["ETag"]):
        revalidated = client.get(
            url("requests", 16, x, y), headers={**gzip_please, "If-None-Match": etag}
        )
        assert revalidated.status_code == 304


def test_tiles_made_without_the_cache_are_not_compressed(chicago_city, settings):
    settings.GEO311_TILE_CACHE = False
    file(LOOP)
    for z, drawn in ((16, "points"), (10, "cells")):
        x, y = tile_xy(LOOP, z)
        response = Client().get(url("requests", z, x, y), headers={"Accept-Encoding": "gzip"})
        assert response["X-Tile-Cache"] == "miss"
        assert "Content-Encoding" not in response
        [feature] = features(response)
        assert ("count" in feature["properties"]) == (drawn == "cells")


def test_tiles_are_made_without_jit_or_parallel_workers(chicago_city, settings, monkeypatch):
    """PostgreSQL costs the PostGIS functions of a tile high enough to compile it (JIT) and to
    start parallel workers for it, both slower than the tile itself: the connection that
    makes a tile runs without either (set once per connection)."""
    monkeypatch.setattr(sql_tiles, "_PLANNER_SET", weakref.WeakSet())
    settings.GEO311_TILE_CACHE = False
    file(LOOP)
    planner = "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"
    with connection.cursor() as cursor:
        cursor.execute("RESET jit; RESET max_parallel_workers_per_gather")
        cursor.execute(planner)
        assert cursor.fetchone() != ("off", "0")
        assert len(features(fetch(Client(), "requests", LOOP, 16))) == 1
        cursor.execute(planner)
        assert cursor.fetchone() == ("off", "0")


@pytest.mark.parametrize("cache", [True, False])
def test_cell_tiles_refuse_counts_made_with_another_grid(chicago_city, settings, cache):
    """The counts are made with GEO311_SENSITIVE_GRID_M and the time zone: after either
    changes, a cell tile says to rebuild them (503) instead of drawing the old counts; point
    tiles do not use them."""
    settings.GEO311_TILE_CACHE = cache
    file(LOOP)
    settings.GEO311_SENSITIVE_GRID_M = float(settings.GEO311_SENSITIVE_GRID_M) * 2
    response = fetch(Client(), "requests", LOOP, 10)
    assert response.status_code == 503
    assert "run manage.py tiles_rebuild" in response.json()["detail"]
    assert len(features(fetch(Client(), "requests", LOOP, 16))) == 1
    tiles.request_cells_rebuild()
    [cell] = features(fetch(Client(), "requests", LOOP, 10))
    assert cell["properties"]["count"] == 1


def test_boundary_tiles_and_their_invalidation(chicago_city):
    from boundaries.models import Boundary

    client = Client()
    found = features(fetch(client, "wards", LOOP, 12), "wards")
    assert found
    assert all(set(f["properties"]) == {"code", "name", "layer"} for f in found)
    assert {f["properties"]["layer"] for f in found} == {"wards"}
    assert fetch(client, "wards", LOOP, 12)["X-Tile-Cache"] == "hit"
    Boundary.objects.filter(version__layer__slug="wards", version__status="active").update(
        name="Renamed"
    )
    again = fetch(client, "wards", LOOP, 12)
    assert again["X-Tile-Cache"] == "miss"
    assert {f["properties"]["name"] for f in features(again, "wards")} == {"Renamed"}


def test_hotspot_tiles_are_for_staff_with_view_reports(chicago_city, planner_client):
    run = AnalysisRun.objects.create(kind="hotspots", key="k", status="done")
    west, south = LOOP.x - 0.01, LOOP.y - 0.01
    HotspotCell.objects.create(
        run=run,
        cell="0:0",
        count=9,
        value=9,
        z=3.1,
        p=0.002,
        q=0.01,
        gi_bin=3,
        hotspot_class="Hot spot - 99% confidence",
        geom=MultiPolygon(Polygon.from_bbox((west, south, west + 0.02, south + 0.02)), srid=4326),
    )
    assert fetch(Client(), "hotspots", LOOP, 14).status_code == 403
    client = planner_client
    response = fetch(client, "hotspots", LOOP, 14)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"].startswith("private")
    (cell,) = features(response, "hotspots")
    assert cell["properties"] == {"z": 3.1, "p": 0.002, "class": "Hot spot - 99% confidence"}
    assert features(fetch(client, "hotspots", LOOP, 14, f"run={run.pk}"), "hotspots")
    assert fetch(client, "hotspots", LOOP, 14, "run=999999").status_code == 400


def test_bad_tiles_are_refused_saying_why(chicago_city):
    client = Client()
    missing = client.get(url("parks", 3, 1, 1))
    assert missing.status_code == 404
    assert "requests, hotspots" in missing.json()["detail"]
    assert "wards" in missing.json()["detail"]
    assert client.get(url("requests", 23, 0, 0)).json()["detail"].startswith("z: 23")
    assert client.get(url("requests", 2, 4, 0)).json()["detail"].startswith("x: 4")
    assert client.get(url("requests", 2, 0, -1)).status_code == 400
    bad_code = client.get(url("requests", 16, 0, 0, "service_code=NOPE"))
    assert bad_code.status_code == 400
    assert bad_code.json()["detail"].startswith("service_code:")
    assert (
        client.get(url("requests", 16, 0, 0, "from=yesterday")).json()["detail"].startswith("from:")
    )
    assert (
        client.get(url("requests", 16, 0, 0, "status=lost")).json()["detail"].startswith("status:")
    )


def test_an_empty_tile_is_204(chicago_city):
    response = Client().get(url("requests", 16, 0, 0))
    assert response.status_code == 204
    assert response.content == b""
    assert response["ETag"]


def test_gdal_reads_a_tile(chicago_city, tmp_path: Path):
    formats = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True, check=True)
    assert "MVT -vector-" in formats.stdout
    for i in range(3):
        file(offset(LOOP, i * 20, 0))
    z = 16
    x, y = tile_xy(LOOP, z)
    response = Client().get(url("requests", z, x, y))
    path = tmp_path / str(z) / str(x) / f"{y}.mvt"
    path.parent.mkdir(parents=True)
    path.write_bytes(response.content)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True, text=True, check=True
    )
    assert "Layer name: requests" in out.stdout
    assert "Feature Count: 3" in out.stdout
    assert "public_id: String" in out.stdout
    # Georeferenced from the z/x/y path: the extent is around the Loop (in EPSG:3857).
    full = subprocess.run(["ogrinfo", "-ro", "-al", str(path)], capture_output=True, text=True)
    assert "POINT (-97" in full.stdout
