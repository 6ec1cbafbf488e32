"""Helpers for the Open311 tests: an api key, requests made fast (straight rows, for lists and
filters) or through the service (routed, for round trips), and XML read with the stdlib parser."""

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

import pytest
from django.contrib.gis.geos import Point
from django.db import connection
from django.test import Client
from django.utils import timezone

from geo311.models import (
    ApiKey,
    Department,
    ServiceCategory,
    ServiceRequest,
    Status,
    StatusEvent,
)
from tests.conftest import LOOP, REPO

BASE = "/open311/v2"
LOOP_POINT = Point(LOOP[1], LOOP[0], srid=4326)
W3C = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
# What a reporter tells us about themselves; none of it may appear in any public answer. Each
# value is one that a random public id or token (URL-safe base64) cannot hold by chance: it has a
# space, "@" or ":" in it, or twelve or more characters ("Ada" alone once turned up in a token).
REPORTER = {
    "first_name": "Ada Mae",
    "last_name": "Lovelace-Byron",
    "email": "ada.private@example.org",
    "phone": "312-555-0199",
    "device_id": "device:7f3a9c",
    "account_id": "account:5521",
}


@pytest.fixture
def api_key(db: None) -> ApiKey:
    return ApiKey.objects.create(name="test client")


def xml_of(response: Any) -> ET.Element:
    """The parsed body of an XML answer, after checking its declaration and content type."""
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def json_of(response: Any) -> Any:
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return response.json()


def errors_of(response: Any) -> list[tuple[int, str]]:
    """(code, description) pairs of an error answer, in either format."""
    if response["Content-Type"].startswith("text/xml"):
        root = xml_of(response)
        assert root.tag == "errors"
        return [
            (int(e.findtext("code", "")), e.findtext("description", ""))
            for e in root.findall("error")
        ]
    return [(e["code"], e["description"]) for e in json_of(response)]


def get(client: Client, path: str, fmt: str = "json", **params: Any) -> Any:
    return client.get(f"{BASE}/{path}.{fmt}", params)


FORM = "application/x-www-form-urlencoded"


def post(client: Client, data: dict[str, Any], fmt: str = "json") -> Any:
    """POST /requests form-encoded, as Open311 says (lists become repeated fields)."""
    return client.post(f"{BASE}/requests.{fmt}", urlencode(data, doseq=True), content_type=FORM)


def make_request(
    code: str = "SIDEWALK",
    *,
    point: Point = LOOP_POINT,
    requested_at: dt.datetime | None = None,
    updated_at: dt.datetime | None = None,
    status: str = "submitted",
    description: str = "",
    events: int = 1,
    **fields: Any,
) -> ServiceRequest:
    """A request row written directly (no routing), with ``events`` public status events."""
    category = ServiceCategory.objects.get(service_code=code)
    now = timezone.now()
    request = ServiceRequest.objects.create(
        category=category,
        department=Department.objects.get(pk=category.default_department_id),
        status=Status.objects.get(code=status),
        location=point,
        description=description,
        requested_at=requested_at or now,
        updated_at=updated_at or requested_at or now,
        **fields,
    )
    for n in range(events):
        StatusEvent.objects.create(
            request=request,
            status=request.status,
            note=f"note {n + 1}",
            created_at=request.requested_at + dt.timedelta(minutes=n),
        )
    return request


def at(days_ago: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days_ago)


# The fields of an Open311 request, in the spec's order.
REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]


# --- a real server ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


@pytest.fixture(scope="module")
def server(chicago_city, django_db_blocker) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(base URL, api key) of a gunicorn serving the test database."""
    with django_db_blocker.unblock():
        key = ApiKey.objects.create(name="live test client").key
    db = connection.settings_dict
    database_url = (
        f"postgis://{quote(db['USER'] or '')}:{quote(str(db['PASSWORD'] or ''))}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "geo311.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "geo311.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:  # refused while binding, or timed out while the worker boots
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=5)
                    pytest.fail(f"gunicorn did not start: {err.decode()[-2000:]}")
                time.sleep(0.1)
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=10)


def call(url: str, data: dict[str, object] | bytes | None = None) -> Answer:
    body = urlencode(data, doseq=True).encode() if isinstance(data, dict) else data
    request = Request(url, data=body)
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except HTTPError as error:
        return Answer(error.code, error.headers["Content-Type"], error.read())
