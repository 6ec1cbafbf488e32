"""Open311 over real HTTP: a gunicorn process serving the test database, spoken to with urllib,
as a city's client app would. The demo city and the api key are committed (module fixtures), so
the server process sees them; what it writes is removed with the city after the module."""

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.error import HTTPError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

import pytest
from django.db import connection

from geo311.models import ApiKey
from tests.conftest import LOOP, REPO
from tests.geo311.conftest import REPORTER, W3C


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


def fields(answer: Answer, fmt: str) -> list[dict[str, object]]:
    """Items of a list answer, as {name: text or value}, checking the format on the way."""
    if fmt == "json":
        assert answer.content_type == "application/json; charset=utf-8"
        import json

        return json.loads(answer.body)
    assert answer.content_type == "text/xml; charset=utf-8"
    assert answer.body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(answer.body)
    return [{child.tag: child.text or "" for child in item} for item in root]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_then_get_over_http(server, fmt):  # type: ignore[no-untyped-def]
    base, key = server
    form = {
        "api_key": key,
        "service_code": "RODENT",
        "lat": LOOP[0],
        "long": LOOP[1],
        "attribute[SIGNS][]": ["rats", "droppings"],
        "description": "Rats by the <b>alley</b> door",
        **REPORTER,
    }
    created = call(f"{base}/open311/v2/requests.{fmt}", form)
    assert created.status == 201, created.body
    (item,) = fields(created, fmt)
    request_id = str(item["service_request_id"])

    read = call(f"{base}/open311/v2/requests/{request_id}.{fmt}?extensions=true")
    assert read.status == 200
    (request,) = fields(read, fmt)
    assert request["service_request_id"] == request_id
    assert request["service_code"] == "RODENT"
    assert request["status"] == "open"
    assert request["description"] == "Rats by the <b>alley</b> door"
    assert request["agency_responsible"] == "Streets & Sanitation"
    assert float(str(request["lat"])) == LOOP[0]
    assert float(str(request["long"])) == LOOP[1]
    assert W3C.match(str(request["requested_datetime"]))

    listed = call(f"{base}/open311/v2/requests.{fmt}?service_code=RODENT")
    assert request_id in [str(r["service_request_id"]) for r in fields(listed, fmt)]
    for answer in (created, read, listed):
        for value in REPORTER.values():
            assert value.encode() not in answer.body


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_over_http_are_in_the_spec_format(server, fmt):  # type: ignore[no-untyped-def]
    base, key = server
    no_key = call(f"{base}/open311/v2/requests.{fmt}", {"service_code": "RODENT"})
    assert no_key.status == 403
    lake = call(
        f"{base}/open311/v2/requests.{fmt}",
        {"api_key": key, "service_code": "SIDEWALK", "lat": "41.90", "long": "-87.55"},
    )
    assert lake.status == 400
    oversized = call(f"{base}/open311/v2/requests.{fmt}", b"api_key=x&d=" + b"x" * 300_000)
    assert oversized.status == 400
    missing = call(f"{base}/open311/v2/requests/999999999.{fmt}")
    assert missing.status == 404
    for answer, code in ((no_key, 403), (lake, 400), (oversized, 400), (missing, 404)):
        ((error),) = fields(answer, fmt)
        assert str(error["code"]) == str(code)
        assert error["description"]
