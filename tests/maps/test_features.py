"""GeoJSON map layers built in the database: requests (filters, bbox, keyset and offset
paging, public fields only, sensitive categories at their cell centre) and boundary layers;
the drf-gis feature of one request agrees with the database's."""

import datetime as dt
import json
from typing import Any

import pytest
from django.contrib.gis.geos import Point, Polygon
from django.test import Client
from django.utils import timezone

from geo311.models import ServiceRequest
from geo311.privacy import public_point
from maps import features
from maps.features import RequestFeatureSerializer, RequestFilters, request_features_queryset
from tests.geo311.conftest import REPORTER, make_request

pytestmark = pytest.mark.django_db

LAYER = "/api/v1/layers/requests.geojson"
PROPERTIES = {
    "service_request_id",
    "service_code",
    "service_name",
    "status",
    "detailed_status",
    "status_name",
    "agency_responsible",
    "requested_datetime",
    "updated_datetime",
    "closed_datetime",
    "address",
    "location_precision_m",
}
# A house in Chicago's 1st police district, where NOISE is served.
HOUSE = Point(-87.627812, 41.884736, srid=4326)


def reporter_fields() -> dict[str, str]:
    return {f"reporter_{key}": value for key, value in REPORTER.items()}


def geojson(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/geo+json"
    body = json.loads(response.content)
    assert body["type"] == "FeatureCollection"
    return body


@pytest.fixture
def noise(chicago_requests: int) -> ServiceRequest:
    return make_request("NOISE", point=HOUSE, address="123 N State St", **reporter_fields())


def test_a_page_holds_public_fields_and_links_to_the_next(
    chicago_requests: int, client: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        first = geojson(client.get(LAYER, {"limit": 50}))
    assert first["numberReturned"] == len(first["features"]) == 50
    feature = first["features"][0]
    assert set(feature["properties"]) == PROPERTIES
    assert feature["geometry"]["type"] == "Point"
    assert feature["id"] == feature["properties"]["service_request_id"]
    (link,) = [x for x in first["links"] if x["rel"] == "next"]
    assert "after=" in link["href"]
    second_response = client.get(link["href"])
    assert second_response["Link"].startswith("<http://testserver/api/v1/layers/requests.geojson?")
    second = geojson(second_response)
    ids = [f["id"] for f in first["features"]]
    more = [f["id"] for f in second["features"]]
    assert len(more) == 50
    assert not set(ids) & set(more)
    # The same rows by offset.
    by_offset = geojson(client.get(LAYER, {"limit": 50, "offset": 50}))
    assert [f["id"] for f in by_offset["features"]] == more


def test_every_page_together_is_every_request_once(chicago_requests: int, client: Client) -> None:
    seen: list[str] = []
    url: str | None = f"{LAYER}?limit=2500"
    while url:
        body = geojson(client.get(url))
        seen += [f["id"] for f in body["features"]]
        url = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == ServiceRequest.objects.count() == chicago_requests


def test_filters_match_the_orm(chicago_requests: int, client: Client) -> None:
    box = (-87.70, 41.85, -87.62, 41.92)
    start, end = dt.date(2012, 1, 1), dt.date(2012, 6, 30)
    body = geojson(
        client.get(
            LAYER,
            {
                "service_code": "SAN_CODE",
                "status": "closed",
                "from": start.isoformat(),
                "to": end.isoformat(),
                "bbox": ",".join(map(str, box)),
                "limit": 10_000,
            },
        )
    )
    zone = timezone.get_current_timezone()
    expected = ServiceRequest.objects.filter(
        category__service_code="SAN_CODE",
        status__open311_status="closed",
        requested_at__gte=dt.datetime.combine(start, dt.time.min, zone),
        requested_at__lte=dt.datetime.combine(end, dt.time.max, zone),
        location__intersects=Polygon.from_bbox(box),
    )
    assert expected.count() > 100
    assert sorted(f["id"] for f in body["features"]) == sorted(
        expected.values_list("public_id", flat=True)
    )
    for feature in body["features"]:
        west, south, east, north = box
        x, y = feature["geometry"]["coordinates"]
        assert west <= x <= east
        assert south <= y <= north


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "10,50,5,40"}, "bbox"),
        ({"limit": 10_001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "to"),
        ({"after": 5, "offset": 10}, "after"),
    ],
)
def test_bad_parameters_are_named(
    chicago_requests: int, client: Client, params: dict[str, Any], field: str
) -> None:
    response = client.get(LAYER, params)
    assert response.status_code == 400
    assert field in response.json()


def test_a_sensitive_request_is_at_its_cell_centre_without_address(
    noise: ServiceRequest, client: Client
) -> None:
    published = public_point(HOUSE, True)
    assert HOUSE.distance(published) > 1e-4  # the grid moves it
    body = geojson(client.get(LAYER, {"service_code": "NOISE"}))
    (feature,) = [f for f in body["features"] if f["id"] == noise.public_id]
    x, y = feature["geometry"]["coordinates"]
    assert (x, y) == (round(published.x, 6), round(published.y, 6))
    assert feature["properties"]["address"] == ""
    assert feature["properties"]["location_precision_m"] == 250.0
    text = json.dumps(body)
    assert f"{HOUSE.x:.5f}" not in text
    assert f"{HOUSE.y:.5f}" not in text
    assert not any(value in text for value in REPORTER.values())

    # A box around the exact point (and not the cell centre) does not find it...
    tight = (HOUSE.x - 1e-4, HOUSE.y - 1e-4, HOUSE.x + 1e-4, HOUSE.y + 1e-4)
    assert not Polygon.from_bbox(tight).intersects(published)
    found = geojson(client.get(LAYER, {"bbox": ",".join(map(str, tight))}))
    assert noise.public_id not in [f["id"] for f in found["features"]]
    # ... a box around the cell centre does.
    around = (published.x - 1e-4, published.y - 1e-4, published.x + 1e-4, published.y + 1e-4)
    found = geojson(client.get(LAYER, {"bbox": ",".join(map(str, around))}))
    assert noise.public_id in [f["id"] for f in found["features"]]


def test_text_outside_ascii_and_json_specials_come_through_as_written(
    chicago_requests: int, client: Client
) -> None:
    # The page travels as text and is encoded once in Python: every character must survive,
    # and quotes, backslashes and control characters must be escaped.
    address = 'Rue de l\'Église 5 "B" \\ 北京 – ✓\tend'
    request = make_request("SIDEWALK", point=HOUSE, address=address)
    around = (HOUSE.x - 1e-4, HOUSE.y - 1e-4, HOUSE.x + 1e-4, HOUSE.y + 1e-4)
    response = client.get(LAYER, {"bbox": ",".join(map(str, around))})
    body = geojson(response)
    (feature,) = [f for f in body["features"] if f["id"] == request.public_id]
    assert feature["properties"]["address"] == address
    assert "北京".encode() in response.content


def test_the_drf_gis_feature_is_the_database_feature(
    noise: ServiceRequest, chicago_requests: int
) -> None:
    requests = list(request_features_queryset().filter(category__service_code__in=["NOISE"]))
    requests += list(request_features_queryset()[:20])
    serialized = {r.public_id: dict(RequestFeatureSerializer(r).data) for r in requests}
    page = features.requests_page(filters=RequestFilters(), limit=10_000)
    in_database = {f["id"]: f for f in json.loads(page.features)}
    assert len(serialized) == 21
    for public_id, feature in serialized.items():
        assert json.loads(json.dumps(feature)) == in_database[public_id]


def test_boundary_layer_current_version_bbox_and_simplify(
    chicago_requests: int, client: Client
) -> None:
    full = client.get("/api/v1/layers/boundaries/wards.geojson")
    body = geojson(full)
    assert len(body["features"]) == 50
    assert set(body["features"][0]["properties"]) == {"code", "name", "layer", "version"}
    simple = client.get("/api/v1/layers/boundaries/wards.geojson", {"simplify": 50})
    assert len(geojson(simple)["features"]) == 50
    assert len(simple.content) < len(full.content) / 3
    loop = geojson(
        client.get(
            "/api/v1/layers/boundaries/wards.geojson", {"bbox": "-87.63,41.878,-87.629,41.879"}
        )
    )
    assert 1 <= len(loop["features"]) <= 3
    assert client.get("/api/v1/layers/boundaries/nowhere.geojson").status_code == 404
    bad = client.get("/api/v1/layers/boundaries/wards.geojson", {"simplify": -1})
    assert bad.status_code == 400
    assert "simplify" in bad.json()
