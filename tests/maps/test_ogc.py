"""OGC API - Features: landing page, conformance, collections with extents, items with bbox,
limit, offset paging links and counts, datetime for requests, single items; then GDAL's OAPIF
driver against a real gunicorn (ogrinfo's feature count and fields, ogr2ogr to a GeoPackage)."""

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyogrio
import pytest
from django.contrib.gis.db.models import Extent
from django.contrib.gis.geos import Polygon
from django.db.models import Max, Min
from django.test import Client

from boundaries.models import Boundary
from geo311.models import ServiceRequest
from tests.notifications.conftest import database_url, free_port, serve, stop

pytestmark = pytest.mark.django_db

OGC = "/ogc"
CONFORMANCE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"


def body_of(response: Any, content_type: str = "application/json") -> dict[str, Any]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == content_type
    return json.loads(response.content)


def rels(document: dict[str, Any]) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in document["links"]}


def test_landing_page_and_conformance(chicago_requests: int, client: Client) -> None:
    landing = body_of(client.get(f"{OGC}/"))
    links = rels(landing)
    assert {"self", "service-desc", "conformance", "data"} <= set(links)
    openapi = client.get(links["service-desc"])
    assert openapi.status_code == 200
    assert json.loads(openapi.content)["openapi"].startswith("3.0")
    conformance = body_of(client.get(links["conformance"]))
    assert {f"{CONFORMANCE}{c}" for c in ("core", "geojson", "oas30")} <= set(
        conformance["conformsTo"]
    )
    bad = client.get(f"{OGC}/", {"f": "xml"})
    assert bad.status_code == 400
    assert "f" in bad.json()


def test_collections_are_requests_and_each_boundary_layer(
    chicago_requests: int, client: Client
) -> None:
    collections = body_of(client.get(f"{OGC}/collections"))["collections"]
    ids = [c["id"] for c in collections]
    assert ids[0] == "requests"
    assert {"wards", "community-areas", "police-districts", "police-beats"} <= set(ids)
    requests = collections[0]
    west, south, east, north = requests["extent"]["spatial"]["bbox"][0]
    assert -87.95 < west < east < -87.5
    assert 41.6 < south < north < 42.1
    # Every request inside, and no more than the 0.01° of rounding around them.
    exact = ServiceRequest.objects.aggregate(box=Extent("location"))["box"]
    for published, true, outwards in zip(
        (west, south, east, north), exact, (-1, -1, 1, 1), strict=True
    ):
        assert 0 <= (published - true) * outwards < 0.01
    start, end = requests["extent"]["temporal"]["interval"][0]
    span = ServiceRequest.objects.aggregate(first=Min("requested_at"), last=Max("requested_at"))
    assert start == span["first"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert end == span["last"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rels(requests)["items"].endswith("/ogc/collections/requests/items")
    wards = body_of(client.get(f"{OGC}/collections/wards"))
    assert wards["itemType"] == "feature"
    assert len(wards["extent"]["spatial"]["bbox"][0]) == 4
    assert client.get(f"{OGC}/collections/nowhere").status_code == 404


def test_items_page_with_counts_and_links(chicago_requests: int, client: Client) -> None:
    items = f"{OGC}/collections/requests/items"
    first = body_of(client.get(items, {"limit": 10}), "application/geo+json")
    assert first["numberMatched"] == chicago_requests
    assert first["numberReturned"] == len(first["features"]) == 10
    links = rels(first)
    assert "prev" not in links
    second = body_of(client.get(links["next"]), "application/geo+json")
    assert "offset=10" in links["next"]
    assert "prev" in rels(second)
    assert not {f["id"] for f in first["features"]} & {f["id"] for f in second["features"]}
    # The last page has no next.
    last = body_of(
        client.get(items, {"limit": 10, "offset": chicago_requests - 3}), "application/geo+json"
    )
    assert last["numberReturned"] == 3
    assert "next" not in rels(last)
    bad = client.get(items, {"limit": 10_001})
    assert bad.status_code == 400
    assert "limit" in bad.json()


def test_items_bbox_and_datetime(chicago_requests: int, client: Client) -> None:
    box = (-87.66, 41.87, -87.62, 41.90)
    page = body_of(
        client.get(
            f"{OGC}/collections/requests/items",
            {"bbox": ",".join(map(str, box)), "datetime": "2013-01-01/2013-12-31", "limit": 10_000},
        ),
        "application/geo+json",
    )
    expected = ServiceRequest.objects.filter(
        location__intersects=Polygon.from_bbox(box), requested_at__year=2013
    ).count()
    assert expected > 10
    assert page["numberMatched"] == page["numberReturned"] == expected
    open_end = body_of(
        client.get(
            f"{OGC}/collections/requests/items", {"datetime": "2014-06-01T00:00:00Z/..", "limit": 1}
        ),
        "application/geo+json",
    )
    assert (
        open_end["numberMatched"]
        == ServiceRequest.objects.filter(requested_at__gte="2014-06-01T00:00:00Z").count()
    )
    bad = client.get(f"{OGC}/collections/requests/items", {"datetime": "soon"})
    assert bad.status_code == 400
    assert "datetime" in bad.json()


def test_single_items(chicago_requests: int, client: Client) -> None:
    request = ServiceRequest.objects.order_by("pk").first()
    assert request is not None
    feature = body_of(
        client.get(f"{OGC}/collections/requests/items/{request.public_id}"), "application/geo+json"
    )
    assert feature["id"] == request.public_id
    assert feature["properties"]["service_code"] == "SAN_CODE"
    assert "self" in rels(feature)
    ward = Boundary.objects.filter(version__layer__slug="wards", version__status="active").first()
    assert ward is not None
    boundary = body_of(
        client.get(f"{OGC}/collections/wards/items/{ward.pk}"), "application/geo+json"
    )
    assert boundary["properties"]["code"] == ward.code
    assert boundary["geometry"]["type"] == "MultiPolygon"


# One per test: DRF marks the test's transaction for rollback when it answers an error.
@pytest.mark.parametrize(
    "path",
    [
        "collections/requests/items/nope",
        "collections/wards/items/999999999",
        "collections/wards/items/x1",
        "collections/nowhere/items",
        "collections/nowhere/items/1",
    ],
)
def test_unknown_items_are_404(chicago_requests: int, client: Client, path: str) -> None:
    response = client.get(f"{OGC}/{path}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


# --- GDAL against a real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def gunicorn(chicago_requests: int) -> Iterator[str]:
    import os

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "geo311.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    process = serve(
        [sys.executable, "-m", "gunicorn", "geo311.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"],
        env,
        port,
    )
    yield f"http://127.0.0.1:{port}"
    stop(process)


def gdal(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_gdal_reads_the_collections(gunicorn: str, chicago_requests: int, tmp_path: Path) -> None:
    source = f"OAPIF:{gunicorn}/ogc/"
    listing = gdal("ogrinfo", "-ro", source)
    assert re.search(r"^\d+: requests", listing, re.M)
    assert re.search(r"^\d+: wards", listing, re.M)

    info = gdal("ogrinfo", "-ro", "-so", source, "requests")
    assert f"Feature Count: {chicago_requests}" in info
    for field in ("service_request_id: String", "service_code: String", "status: String"):
        assert field in info
    assert re.search(r"requested_datetime: DateTime", info)
    for private in ("reporter", "email", "phone", "description"):
        assert private not in info

    wards = gdal("ogrinfo", "-ro", "-so", source, "wards")
    assert "Feature Count: 50" in wards
    assert "Geometry: Multi Polygon" in wards

    # Every feature, page after page, into a GeoPackage.
    out = tmp_path / "geo311.gpkg"
    gdal("ogr2ogr", "-f", "GPKG", str(out), source, "requests", "wards", "-oo", "PAGE_SIZE=2000")
    layers = dict(pyogrio.list_layers(out))
    assert set(layers) == {"requests", "wards"}
    assert pyogrio.read_info(out, layer="requests")["features"] == chicago_requests
    assert pyogrio.read_info(out, layer="wards")["features"] == 50
    frame = pyogrio.read_dataframe(out, layer="requests", columns=["service_request_id"])
    assert frame["service_request_id"].is_unique
