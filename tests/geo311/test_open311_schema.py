"""The OpenAPI schema covers the boundary API and Open311, validates without warnings, and the
Swagger UI is served from this host (no CDN)."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db  # the schema views look up the session

OPEN311_PATHS = {
    "/open311/v2/discovery.{fmt}": ["get"],
    "/open311/v2/services.{fmt}": ["get"],
    "/open311/v2/services/{service_code}.{fmt}": ["get"],
    "/open311/v2/requests.{fmt}": ["get", "post"],
    "/open311/v2/requests/{service_request_id}.{fmt}": ["get"],
    "/open311/v2/requests/{service_request_id}/nearby.{fmt}": ["get"],
    "/open311/v2/tokens/{token}.{fmt}": ["get"],
    "/open311/v2/servicerequestupdates.{fmt}": ["get", "post"],
    "/open311/v2/coverage.{fmt}": ["get"],
}


def test_schema_covers_open311_and_the_boundary_api(client: Client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    for path, methods in OPEN311_PATHS.items():
        assert sorted(paths[path]) == methods, path
    assert "/api/v1/boundaries/lookup" in paths
    assert "/api/v1/boundaries/layers/{slug}/boundaries.geojson" in paths

    listing = paths["/open311/v2/requests.{fmt}"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"service_request_id", "service_code", "start_date", "end_date", "status"} <= names
    assert {"page", "page_size", "updated_after", "lat", "long", "radius", "bbox"} <= names
    assert "format" not in names  # the suffix chooses the format
    fmt = next(p for p in listing["parameters"] if p["name"] == "fmt")
    assert fmt["schema"]["enum"] == ["json", "xml"]
    assert set(listing["responses"]["200"]["content"]) == {"application/json", "text/xml"}
    create = paths["/open311/v2/requests.{fmt}"]["post"]
    assert "application/x-www-form-urlencoded" in create["requestBody"]["content"]
    assert set(create["responses"]) == {"201", "400", "403", "404"}
    error_list = create["responses"]["403"]["content"]["application/json"]["schema"]
    assert error_list["type"] == "array"


def test_schema_validates_without_warnings(tmp_path: Path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3")


@pytest.mark.parametrize("cdn", ["cdn.", "jsdelivr", "unpkg", "cdnjs"])
def test_swagger_ui_is_served_from_this_host(client: Client, cdn):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert cdn not in page


STAFF_PATHS = {
    "/api/v1/staff/token": ["post"],
    "/api/v1/staff/requests": ["get"],
    "/api/v1/staff/requests/file": ["post"],
    "/api/v1/staff/requests/{public_id}": ["get"],
    "/api/v1/staff/requests/{public_id}/history": ["get"],
    "/api/v1/staff/requests/{public_id}/transition": ["post"],
    "/api/v1/staff/requests/{public_id}/assign": ["post"],
    "/api/v1/staff/requests/{public_id}/notes": ["post"],
    "/api/v1/staff/requests/{public_id}/merge": ["post"],
    "/api/v1/staff/requests/{public_id}/move": ["post"],
    "/api/v1/requests/{public_id}/follow": ["post"],
    "/api/v1/requests/{public_id}/followers": ["get"],
    "/api/v1/requests/unsubscribe": ["post"],
}


def test_schema_documents_the_staff_and_follow_apis(client: Client):
    paths = json.loads(client.get("/api/schema/", {"format": "json"}).content)["paths"]
    for path, methods in STAFF_PATHS.items():
        assert sorted(paths[path]) == methods, path
    queue = paths["/api/v1/staff/requests"]["get"]
    assert {"status", "service_code", "boundary", "min_age_days", "overdue"} <= {
        p["name"] for p in queue["parameters"]
    }
    assert queue["security"]  # authenticated: token or session
    assert "tokenAuth" in json.dumps(queue["security"])
