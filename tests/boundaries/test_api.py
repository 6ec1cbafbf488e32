import json

import pytest
from django.test import Client

from importers.boundaries import import_boundary_file
from tests.conftest import CHICAGO, LOOP
from tests.factories import BoundaryFactory, LayerFactory, LayerVersionFactory, square

pytestmark = pytest.mark.django_db


@pytest.fixture
def chicago(db: None) -> None:
    import_boundary_file(
        CHICAGO / "wards_2003_2015.gpkg",
        layer="wards",
        code_field="ward",
        name_field="alderman",
        exclude_codes=frozenset({"OUT"}),
        layer_kind="ward",
        layer_name="Wards",
    )
    import_boundary_file(
        CHICAGO / "community_areas.geojson",
        layer="community-areas",
        code_field="AREA_NUMBE",
        name_field="COMMUNITY",
    )
    import_boundary_file(
        CHICAGO / "police_districts_2012_shapefile.zip",
        layer="police-districts",
        code_field="dist_num",
        name_field="dist_label",
        merge_duplicates=True,
    )


def test_lookup_names_ward_community_area_and_police_district_of_the_loop(client: Client, chicago):
    response = client.get("/api/v1/boundaries/lookup", {"lat": LOOP[0], "lon": LOOP[1]})
    assert response.status_code == 200
    body = response.json()
    found = {g["layer"]: [(b["code"], b["name"]) for b in g["boundaries"]] for g in body["layers"]}
    assert found == {
        "community-areas": [("32", "LOOP")],
        "police-districts": [("1", "1ST")],
        "wards": [("2", "ROBERT FIORETTI")],
    }
    wards = next(g for g in body["layers"] if g["layer"] == "wards")
    assert (wards["kind"], wards["name"], wards["version"]) == ("ward", "Wards", 1)
    assert wards["boundaries"][0]["url"].startswith("http://testserver/api/v1/boundaries/")


def test_lookup_narrowed_to_layers(client: Client, chicago):
    response = client.get(
        "/api/v1/boundaries/lookup",
        {"lat": LOOP[0], "lon": LOOP[1], "layer": "wards,police-districts"},
    )
    assert [g["layer"] for g in response.json()["layers"]] == ["police-districts", "wards"]


def test_lookup_outside_every_layer_is_an_empty_list(client: Client, chicago):
    response = client.get("/api/v1/boundaries/lookup", {"lat": 40.7, "lon": -74.0})
    assert response.status_code == 200
    assert response.json()["layers"] == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"lon": -87.6}, "lat", "This field is required."),
        ({"lat": "north", "lon": -87.6}, "lat", "A valid number is required."),
        ({"lat": 41.8, "lon": -200}, "lon", "Ensure this value is greater than or equal to -180."),
        ({"lat": 41.8, "lon": -87.6, "layer": "wards,nope"}, "layer", "unknown layer(s): nope"),
    ],
)
def test_lookup_rejects_bad_input_naming_the_field(client: Client, chicago, params, field, message):
    response = client.get("/api/v1/boundaries/lookup", params)
    assert response.status_code == 400
    assert response.json() == {field: [message]}


def test_lookup_query_count(client: Client, chicago, django_assert_num_queries):
    # One query for the lookup; the `layer` check adds one.
    with django_assert_num_queries(1):
        client.get("/api/v1/boundaries/lookup", {"lat": LOOP[0], "lon": LOOP[1]})
    with django_assert_num_queries(2):
        client.get("/api/v1/boundaries/lookup", {"lat": LOOP[0], "lon": LOOP[1], "layer": "wards"})


def test_layer_list_and_detail(client: Client, chicago, django_assert_num_queries):
    with django_assert_num_queries(2):
        layers = client.get("/api/v1/boundaries/layers/").json()
    assert [layer["slug"] for layer in layers] == ["community-areas", "police-districts", "wards"]
    wards = layers[2]
    assert wards["active_version"]["number"] == 1
    assert wards["active_version"]["feature_count"] == 50
    assert wards["boundaries_url"].endswith("/layers/wards/boundaries.geojson")
    detail = client.get("/api/v1/boundaries/layers/wards/").json()
    assert [v["number"] for v in detail["versions"]] == [1]
    assert client.get("/api/v1/boundaries/layers/nope/").status_code == 404


def test_layer_list_query_count_does_not_grow_with_layers(
    client: Client, django_assert_num_queries
):
    for _ in range(5):
        BoundaryFactory(version=LayerVersionFactory(layer=LayerFactory()))
    with django_assert_num_queries(2):
        assert len(client.get("/api/v1/boundaries/layers/").json()) == 5


def test_layer_boundaries_geojson_simplified_in_metres(client: Client, chicago):
    full = client.get("/api/v1/boundaries/layers/wards/boundaries.geojson")
    simple = client.get("/api/v1/boundaries/layers/wards/boundaries.geojson", {"simplify": 50})
    assert full["Content-Type"] == "application/geo+json"
    full_fc, simple_fc = full.json(), simple.json()
    assert len(full_fc["features"]) == len(simple_fc["features"]) == 50
    assert len(simple.content) < len(full.content) / 5
    assert {f["geometry"]["type"] for f in simple_fc["features"]} == {"MultiPolygon"}
    ward_2 = next(f for f in simple_fc["features"] if f["properties"]["code"] == "2")
    assert ward_2["properties"]["name"] == "ROBERT FIORETTI"


GTE_ZERO = "Ensure this value is greater than or equal to 0.0."
CA_URL = "/api/v1/boundaries/layers/community-areas/boundaries.geojson"


def test_layer_boundaries_bbox(client: Client, chicago):
    # A small box around the Loop touches a handful of community areas, not all 77.
    box = f"{LOOP[1] - 0.005},{LOOP[0] - 0.005},{LOOP[1] + 0.005},{LOOP[0] + 0.005}"
    codes = {f["properties"]["code"] for f in client.get(CA_URL, {"bbox": box}).json()["features"]}
    assert "32" in codes
    assert len(codes) < 10


# One bad request per test: DRF marks the surrounding (test) transaction for rollback on a 400.
@pytest.mark.parametrize(
    ("params", "status", "body"),
    [
        ({"bbox": "1,2,3"}, 400, {"bbox": ["bbox must be four numbers: west,south,east,north"]}),
        ({"bbox": "5,2,3,4"}, 400, {"bbox": ["bbox must have west < east and south < north"]}),
        (
            {"simplify": -1},
            400,
            {"simplify": ["Ensure this value is greater than or equal to 0.0."]},
        ),
        ({"version": 9}, 404, {"detail": "layer 'community-areas' has no version 9"}),
    ],
)
def test_layer_boundaries_bad_params(client: Client, chicago, params, status, body):
    response = client.get(CA_URL, params)
    assert response.status_code == status
    assert response.json() == body


def test_one_boundary_as_geojson_feature(client: Client):
    boundary = BoundaryFactory(code="7", name="Seven", geom=square(-87.7, 41.8, 0.1))
    body = client.get(f"/api/v1/boundaries/{boundary.pk}/").json()
    assert body["type"] == "Feature"
    assert body["geometry"]["type"] == "MultiPolygon"
    assert body["properties"]["code"] == "7"
    assert body["properties"]["layer"] == boundary.version.layer.slug
    assert json.dumps(body["geometry"]["coordinates"]).count("-87.7") >= 2


def test_health(client: Client):
    assert client.get("/health").json() == {"status": "ok"}
