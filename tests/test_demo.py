import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client

from boundaries.models import LayerVersion
from tests.conftest import LOOP

pytestmark = pytest.mark.django_db


def test_load_demo_twice_loads_chicago_once_and_keeps_the_password(
    client: Client, capsys: pytest.CaptureFixture[str], settings, tmp_path
):
    settings.BASE_DIR = tmp_path  # the password file goes to tmp_path/var/
    call_command("load_demo")
    first = capsys.readouterr().out
    call_command("load_demo")
    second = capsys.readouterr().out

    assert "wards              v1 (active) loaded" in first
    assert "wards              v2 (staged) loaded" in first
    assert second.count("already loaded") == 6
    password = first.split("password '")[1].split("'")[0]
    assert f"password '{password}'" in second
    assert authenticate(username="admin", password=password) is not None
    assert LayerVersion.objects.count() == 6
    assert "staff roles: call-taker, crew, department-staff, manager, gis-admin" in second

    body = client.get("/api/v1/boundaries/lookup", {"lat": LOOP[0], "lon": LOOP[1]}).json()
    found = {g["layer"]: g["boundaries"][0]["name"] for g in body["layers"]}
    assert found == {
        "city-limits": "City of Chicago",
        "community-areas": "LOOP",
        "police-beats": "113",
        "police-districts": "1ST",
        "wards": "ROBERT FIORETTI",
    }
