"""POST /requests: filing through Open311 and reading back, tokens, api keys, and every kind of
bad input answered with errors that name the parameter, with nothing written."""

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from django.test import Client
from django.utils import timezone

from geo311.addresses import normalize_address
from geo311.models import AddressPoint, ApiKey, ServiceCategory, ServiceRequest, StatusEvent
from tests.conftest import LOOP
from tests.geo311.conftest import (
    BASE,
    FORM,
    REPORTER,
    REQUEST_FIELDS,
    W3C,
    errors_of,
    get,
    json_of,
    post,
    xml_of,
)

pytestmark = pytest.mark.django_db

LAT, LONG = str(LOOP[0]), str(LOOP[1])


def sanitation(api_key: ApiKey, **extra: object) -> dict[str, object]:
    return {
        "api_key": api_key.key,
        "service_code": "SAN_CODE",
        "lat": LAT,
        "long": LONG,
        "attribute[NATURE]": "overflowing-carts",
        "attribute[SEEN_AT]": "2026-11-26T14:03:00-06:00",
        "description": "Carts overflowing behind the diner",
        **extra,
    }


def test_post_json_then_get_reads_back_the_same_request(client: Client, chicago_city, api_key):
    response = post(client, sanitation(api_key, **REPORTER))
    assert response.status_code == 201
    (created,) = json_of(response)
    assert list(created) == ["service_request_id", "service_notice", "account_id"]
    assert created["service_notice"] == ""
    assert created["account_id"] is None
    request_id = created["service_request_id"]
    assert isinstance(request_id, str)

    stored = ServiceRequest.objects.get(public_id=request_id)
    assert stored.channel == "api"
    assert stored.reporter_email == REPORTER["email"]
    assert stored.attributes == {
        "NATURE": "overflowing-carts",
        "SEEN_AT": "2026-11-26T14:03:00-06:00",
    }

    (read,) = json_of(get(client, f"requests/{request_id}"))
    assert list(read) == REQUEST_FIELDS
    assert read["service_request_id"] == request_id
    assert read["status"] == "open"
    assert read["status_notes"] == "Received"
    assert read["service_name"] == "Sanitation code violation"
    assert read["service_code"] == "SAN_CODE"
    assert read["description"] == "Carts overflowing behind the diner"
    assert read["agency_responsible"] == "Streets & Sanitation"
    assert W3C.match(read["requested_datetime"])
    assert W3C.match(read["updated_datetime"])
    # The demo's service level for sanitation: a week.
    expected = dt.datetime.fromisoformat(read["expected_datetime"])
    assert expected - dt.datetime.fromisoformat(read["requested_datetime"]) == dt.timedelta(
        hours=168
    )
    assert (read["lat"], read["long"]) == (LOOP[0], LOOP[1])
    assert (read["address"], read["address_id"], read["zipcode"], read["media_url"]) == (
        "",
        "",
        "",
        "",
    )
    assert dt.datetime.fromisoformat(read["requested_datetime"]) == stored.requested_at.replace(
        microsecond=0
    )


def test_post_xml_answers_xml_and_the_request_reads_back_in_xml(
    client: Client, chicago_city, api_key
):
    response = post(client, sanitation(api_key), "xml")
    assert response.status_code == 201
    root = xml_of(response)
    assert root.tag == "service_requests"
    (item,) = root
    assert item.tag == "request"
    assert [child.tag for child in item] == ["service_request_id", "service_notice", "account_id"]
    request_id = item.findtext("service_request_id")
    assert item.findtext("account_id") == ""  # empty element: null

    (read,) = xml_of(get(client, f"requests/{request_id}", "xml"))
    json_read = json_of(get(client, f"requests/{request_id}"))[0]
    assert read.tag == "request"
    assert [child.tag for child in read] == list(json_read)
    for child in read:
        expected = json_read[child.tag]
        assert child.text == (None if expected in ("", None) else str(expected)), child.tag


def test_batch_service_answers_with_a_token_that_leads_to_the_id(
    client: Client, chicago_city, api_key
):
    response = post(
        client, {"api_key": api_key.key, "service_code": "STRAY_ANIMAL", "lat": LAT, "long": LONG}
    )
    assert response.status_code == 201
    (created,) = json_of(response)
    assert "service_request_id" not in created
    assert list(created) == ["token", "service_notice", "account_id"]
    assert created["service_notice"] == "Your report is queued; its id is given by the token."
    stored = ServiceRequest.objects.get()
    assert created["token"] == stored.token

    (found,) = json_of(get(client, f"tokens/{created['token']}"))
    assert found == {"service_request_id": stored.public_id, "token": stored.token}
    root = xml_of(get(client, f"tokens/{created['token']}", "xml"))
    assert root.tag == "service_requests"
    assert [(c.tag, c.text) for c in root.find("request") or []] == [
        ("service_request_id", stored.public_id),
        ("token", stored.token),
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_token_is_404(client: Client, chicago_city, fmt):
    response = get(client, "tokens/no-such-token", fmt)
    assert response.status_code == 404
    assert errors_of(response) == [(404, "token: no request for token no-such-token")]


def test_multivaluelist_answers_arrive_as_repeated_fields(client: Client, chicago_city, api_key):
    data = {
        "api_key": api_key.key,
        "service_code": "RODENT",
        "lat": LAT,
        "long": LONG,
        "attribute[SIGNS][]": ["rats", "burrows"],
    }
    response = post(client, data)
    assert response.status_code == 201, response.content
    request_id = json_of(response)[0]["service_request_id"]
    assert ServiceRequest.objects.get().attributes == {"SIGNS": ["rats", "burrows"]}
    (read,) = json_of(get(client, f"requests/{request_id}", extensions="true"))
    assert read["extended_attributes"]["answers"] == [
        {"code": "SIGNS", "question": "What have you seen?", "values": ["rats", "burrows"]}
    ]


def test_multipart_form_is_taken_too(client: Client, chicago_city, api_key):
    response = client.post(f"{BASE}/requests.json", sanitation(api_key))
    assert response.status_code == 201


def test_channel_extension(client: Client, chicago_city, api_key):
    assert post(client, sanitation(api_key, channel="phone")).status_code == 201
    assert ServiceRequest.objects.get().channel == "phone"
    response = post(client, sanitation(api_key, channel="pigeon"))
    assert errors_of(response) == [(400, 'channel: "pigeon" is not a valid choice.')]


@pytest.fixture
def address_point(db: None) -> AddressPoint:
    return AddressPoint.objects.create(
        address_id="ADDR-121",
        address="121 N LaSalle St",
        normalized=normalize_address("121 N LaSalle St"),
        zipcode="60602",
        location=f"SRID=4326;POINT({LONG} {LAT})",
    )


@pytest.mark.parametrize(
    "where", [{"address_string": "121 North LaSalle Street"}, {"address_id": "ADDR-121"}]
)
def test_address_string_or_address_id_locates_the_request(
    client: Client, chicago_city, api_key, address_point, where
):
    data = {"api_key": api_key.key, "service_code": "SIDEWALK", **where}
    response = post(client, data)
    assert response.status_code == 201, response.content
    request_id = json_of(response)[0]["service_request_id"]
    (read,) = json_of(get(client, f"requests/{request_id}"))
    assert (read["address"], read["address_id"], read["zipcode"]) == (
        "121 N LaSalle St",
        "ADDR-121",
        "60602",
    )
    assert (read["lat"], read["long"]) == (LOOP[0], LOOP[1])


@pytest.mark.parametrize(
    ("where", "error"),
    [
        (
            {"address_string": "1 Nowhere Plaza"},
            "address_string: no address point for '1 Nowhere Plaza' (looked for '1 NOWHERE PLZ')",
        ),
        ({"address_id": "ADDR-0"}, "address_id: no address point with id 'ADDR-0'"),
    ],
)
def test_unknown_address_is_a_400_naming_it(
    client: Client, chicago_city, api_key, address_point, where, error
):
    response = post(client, {"api_key": api_key.key, "service_code": "SIDEWALK", **where})
    assert response.status_code == 400
    assert errors_of(response) == [(400, error)]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("key", "error"),
    [
        (None, "api_key: missing: POST /requests needs the api_key given to your application"),
        ("", "api_key: missing: POST /requests needs the api_key given to your application"),
        ("wrong", "api_key: not a valid key (unknown or switched off)"),
        ("inactive", "api_key: not a valid key (unknown or switched off)"),
    ],
)
def test_missing_or_wrong_api_key_is_403(client: Client, chicago_city, api_key, fmt, key, error):
    data = sanitation(api_key)
    if key is None:
        del data["api_key"]
    elif key == "inactive":
        ApiKey.objects.filter(pk=api_key.pk).update(active=False)
    else:
        data["api_key"] = key
    response = post(client, data, fmt)
    assert response.status_code == 403
    assert errors_of(response) == [(403, error)]
    assert not ServiceRequest.objects.exists()


def test_api_key_use_is_recorded(client: Client, chicago_city, api_key):
    assert api_key.last_used_at is None
    post(client, sanitation(api_key))
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < dt.timedelta(seconds=30)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_code_is_404(client: Client, chicago_city, api_key, fmt):
    response = post(client, sanitation(api_key, service_code="UFO"), fmt)
    assert response.status_code == 404
    assert errors_of(response) == [(404, "service_code: no service UFO")]


def test_post_for_another_jurisdiction_is_404(client: Client, chicago_city, api_key):
    response = post(client, sanitation(api_key, jurisdiction_id="evanston.il.us"))
    assert response.status_code == 404
    assert errors_of(response)[0][1].startswith("jurisdiction_id: ")


def _without(data: dict[str, object], *names: str) -> dict[str, object]:
    return {k: v for k, v in data.items() if k not in names}


BAD_INPUT = [
    pytest.param({"lat": "nan"}, ["lat: lat must be between -90 and 90"], id="nan"),
    pytest.param({"long": "inf"}, ["long: long must be between -180 and 180"], id="inf"),
    pytest.param({"lat": "-Infinity"}, ["lat: lat must be between -90 and 90"], id="-inf"),
    pytest.param({"lat": "91"}, ["lat: lat must be between -90 and 90"], id="lat-range"),
    pytest.param({"long": "-181"}, ["long: long must be between -180 and 180"], id="long-range"),
    pytest.param({"lat": "north"}, ["lat: lat must be a number, got 'north'"], id="lat-text"),
    pytest.param({"long": ""}, ["long: long must be a number, got ''"], id="no-long"),
    pytest.param(
        {"lat": "41.90", "long": "-87.55"},
        ["lat/long: the location is outside the area this service covers"],
        id="lake-michigan",
    ),
    pytest.param(
        {"address_string": "121 N LaSalle St"},
        [
            "lat/long: give one location: lat and long, address_string or address_id "
            "(got lat/long and address_string)"
        ],
        id="two-locations",
    ),
    pytest.param(
        {"lat": "", "long": ""},
        [
            "lat/long: give one location: lat and long, address_string or address_id "
            "(none was given)"
        ],
        id="no-location",
    ),
    pytest.param(
        {"attribute[NATURE]": ""},
        ["attribute[NATURE]: required: What is the nature of this code violation?"],
        id="missing-required-attribute",
    ),
    pytest.param(
        {"attribute[SEEN_AT]": "yesterday"},
        ["attribute[SEEN_AT]: must be a date-time like 2026-11-26T14:03:00-06:00, got 'yesterday'"],
        id="wrong-datatype",
    ),
    pytest.param(
        {"attribute[NATURE]": "", "attribute[COLOR]": "red"},
        [
            "attribute[COLOR]: 'COLOR' is not a question of SAN_CODE",
            "attribute[NATURE]: required: What is the nature of this code violation?",
        ],
        id="several-errors",
    ),
    pytest.param(
        {"attribute[]": "x"},
        ["attribute[]: answers are sent as attribute[CODE]=value or attribute[CODE][]=value"],
        id="malformed-attribute",
    ),
    pytest.param(
        {"attribute[NATURE]": "other\x00"},
        ["attribute[NATURE]: null characters are not allowed"],
        id="nul-in-answer",
    ),
    pytest.param(
        {"description": "x" * 4001},
        ["description: at most 4000 characters, got 4001"],
        id="description-too-long",
    ),
    pytest.param({"email": "not-an-address"}, ["email: Enter a valid email address."], id="email"),
    pytest.param({"media_url": "javascript:alert(1)"}, ["media_url: Enter a valid URL."], id="url"),
    pytest.param(
        {"phone": "5" * 51},
        ["phone: Ensure this field has no more than 50 characters."],
        id="phone",
    ),
    pytest.param({"service_code": ""}, ["service_code: This field is required."], id="no-code"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("change", "errors"), BAD_INPUT)
def test_bad_input_is_a_400_naming_the_parameter_and_nothing_is_written(
    client: Client, chicago_city, api_key, fmt, change, errors
):
    response = post(client, sanitation(api_key, **change), fmt)
    assert response.status_code == 400
    assert errors_of(response) == [(400, e) for e in errors]
    assert not ServiceRequest.objects.exists()
    assert not StatusEvent.objects.exists()


def test_retired_service_is_refused(client: Client, chicago_city, api_key):
    ServiceCategory.objects.filter(service_code="SAN_CODE").update(active=False)
    response = post(client, sanitation(api_key))
    assert errors_of(response) == [(400, "service_code: SAN_CODE is not taken any more")]


def test_empty_optional_parameters_are_absent(client: Client, chicago_city, api_key):
    data = sanitation(
        api_key, address_string="", address_id="", email="", media_url="", description=""
    )
    assert post(client, data).status_code == 201


def test_html_is_stored_as_text_escaped_in_xml_and_as_is_in_json(
    client: Client, chicago_city, api_key
):
    text = "<script>alert('x')</script> & <b>bold</b> \x01 done"
    response = post(client, sanitation(api_key, description=text))
    request_id = json_of(response)[0]["service_request_id"]
    assert ServiceRequest.objects.get().description == text
    assert json_of(get(client, f"requests/{request_id}"))[0]["description"] == text

    raw = get(client, f"requests/{request_id}", "xml").content
    assert b"<script>" not in raw
    assert b"&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in raw
    # A control character XML cannot carry becomes U+FFFD instead of breaking the document.
    described = ET.fromstring(raw).findtext("request/description")
    assert described == text.replace("\x01", "\ufffd")


def test_a_non_form_body_is_a_400_in_the_spec_format(client: Client, chicago_city, api_key):
    response = client.post(
        f"{BASE}/requests.xml", {"api_key": api_key.key}, content_type="application/json"
    )
    assert response.status_code == 400
    ((code, description),) = errors_of(response)
    assert code == 400
    assert "application/x-www-form-urlencoded" in description


def test_an_oversized_body_is_a_400_in_the_spec_format(client: Client, chicago_city, api_key):
    body = "api_key=" + api_key.key + "&description=" + "x" * 300_000
    response = client.post(f"{BASE}/requests.json", body, content_type=FORM)
    assert response.status_code == 400
    assert errors_of(response) == [(400, "the request body is larger than 262144 bytes")]


def test_a_body_over_django_upload_limit_is_a_400_in_the_spec_format(
    client: Client, chicago_city, api_key, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = "api_key=" + api_key.key + "&description=" + "x" * 5000
    response = client.post(f"{BASE}/requests.xml", body, content_type=FORM)
    assert response.status_code == 400
    assert errors_of(response) == [(400, "the request body is too large")]


def test_too_many_fields_is_a_400_in_the_spec_format(
    client: Client, chicago_city, api_key, settings
):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    body = "&".join(f"attribute[X{n}]=1" for n in range(50))
    response = client.post(f"{BASE}/requests.json", body, content_type=FORM)
    assert response.status_code == 400
    ((_, description),) = errors_of(response)
    assert description.startswith("the request body was refused")


def test_garbled_form_does_not_break_anything(client: Client, chicago_city, api_key):
    response = client.post(f"{BASE}/requests.json", b"%%%&&==&\xff\xfe=\x00", content_type=FORM)
    assert response.status_code == 403  # nothing readable, so no api_key


def test_an_uploaded_file_is_refused_with_a_hint(client: Client, chicago_city, api_key):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {**sanitation(api_key), "media": SimpleUploadedFile("p.jpg", b"\xff\xd8", "image/jpeg")}
    response = client.post(f"{BASE}/requests.json", data)
    assert errors_of(response) == [(400, "media: files are not taken here; send a media_url")]
