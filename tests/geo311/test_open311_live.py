"""Open311 over real HTTP: a gunicorn process serving the test database, spoken to with urllib,
as a city's client app would. The demo city and the api key are committed (module fixtures), so
the server process sees them; what it writes is removed with the city after the module."""

import xml.etree.ElementTree as ET

import pytest

from tests.conftest import LOOP
from tests.geo311.conftest import REPORTER, W3C, Answer, call


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
