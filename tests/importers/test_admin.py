import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from boundaries.models import Boundary, Layer, LayerVersion
from tests.conftest import CHICAGO, NYC

pytestmark = pytest.mark.django_db

URL = "/admin/boundaries/layer/import/"


@pytest.fixture
def staff(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("gis", "gis@example.org", "pw-gis-team-1")
    client.force_login(user)
    return client


def upload(path, name=None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def test_upload_a_zipped_shapefile_imports_it(staff: Client):
    response = staff.post(
        URL,
        {
            "file": upload(CHICAGO / "police_districts_2012_shapefile.zip"),
            "layer": "police-districts",
            "kind": "department_district",
            "code_field": "dist_num",
            "name_field": "dist_label",
        },
    )
    assert response.status_code == 200
    assert b"Imported 23 boundaries" not in response.content  # duplicates refused by default
    assert b"code &#x27;31&#x27; is already used by feature 3" in response.content
    assert not Layer.objects.exists()

    response = staff.post(
        URL,
        {
            "file": upload(CHICAGO / "police_districts_2012_shapefile.zip"),
            "layer": "police-districts",
            "kind": "department_district",
            "code_field": "dist_num",
            "name_field": "dist_label",
            "merge_duplicates": "on",
        },
    )
    assert b"Imported 23 boundaries" in response.content
    version = LayerVersion.objects.get(layer__slug="police-districts")
    assert version.source_name == "police_districts_2012_shapefile.zip"
    assert version.status == "active"


def test_upload_dry_run_previews_and_writes_nothing(staff: Client):
    response = staff.post(
        URL,
        {
            "file": upload(NYC / "boundaries" / "schooldist.geojson"),
            "layer": "schooldist",
            "kind": "other",
            "dry_run": "on",
        },
    )
    assert b"Preview (nothing was written)" in response.content
    assert b"Would import 32 boundaries" in response.content
    assert b"feature 17 (code 17)" in response.content
    assert not Layer.objects.exists()


def test_upload_of_a_bad_file_shows_the_reason(staff: Client):
    response = staff.post(
        URL,
        {
            "file": SimpleUploadedFile("wards.zip", b"PK\x03\x04 not really a zip"),
            "layer": "wards",
            "kind": "ward",
        },
    )
    assert response.status_code == 200
    assert b"is not a readable zip archive" in response.content
    assert not Layer.objects.exists()


def test_admin_pages_render_with_the_map_widget(staff: Client):
    staff.post(
        URL,
        {
            "file": upload(CHICAGO / "community_areas.geojson"),
            "layer": "ca",
            "kind": "other",
            "code_field": "AREA_NUMBE",
            "name_field": "COMMUNITY",
        },
    )
    boundary = Boundary.objects.get(code="32")
    page = staff.get(f"/admin/boundaries/boundary/{boundary.pk}/change/")
    assert page.status_code == 200
    # The map widget, with OpenLayers from our own static files (no CDN at run time).
    assert b'id="id_geom_map"' in page.content
    assert b'src="/static/vendor/ol-7.2.2/ol.js"' in page.content
    assert b"cdn." not in page.content
    assert staff.get("/admin/boundaries/layer/").status_code == 200
    assert b"Import a boundary file" in staff.get("/admin/boundaries/layer/").content
    assert staff.get("/admin/boundaries/layerversion/").status_code == 200


def test_people_without_permission_cannot_import(client: Client):
    user = get_user_model().objects.create_user("clerk", password="pw-clerk-311", is_staff=True)
    client.force_login(user)
    response = client.post(
        URL,
        {
            "file": upload(CHICAGO / "community_areas.geojson"),
            "layer": "ca",
            "kind": "other",
            "code_field": "AREA_NUMBE",
        },
    )
    assert response.status_code == 200
    assert b"You may not import boundaries." in response.content
    assert not Layer.objects.exists()
