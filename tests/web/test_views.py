"""The report page as a plain form (no JavaScript): what it renders from the service definitions,
what a POST files, and errors shown next to the field that is wrong; the call-taker's form,
the address search, follow / unfollow from the tracking page, and the public map page."""

import re
from typing import Any

import pytest
from django.contrib.gis.geos import Point

from geo311.models import AddressPoint, Channel, Follower, ServiceCategory, ServiceRequest
from geo311.notifications.models import ReporterPreference
from geo311.privacy import public_point
from geo311.roles import CALL_TAKER, CREW
from geo311.services import Reporter, request_create
from tests.conftest import LOOP
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

WARD_42 = {"lat": "41.8850", "long": "-87.6230"}


def field_errors(html: str, name: str) -> list[str]:
    """The error messages shown inside the field block of ``name``."""
    match = re.search(
        rf'<div class="field has-error" id="field-{re.escape(name)}">(.*?)</div>', html, re.S
    )
    if match is None:
        return []
    return re.findall(r'<p class="error" id="[^"]+">(.*?)</p>', match.group(1), re.S)


def test_the_report_page_renders_every_question_of_every_category(
    chicago_city: None, client: Any
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<optgroup label="Streets">' in html
    assert '<optgroup label="Sanitation">' in html
    # All six Open311 datatypes, each with its label.
    assert 'name="q-POTHOLE-WHERE"' in html  # singlevaluelist
    assert re.search(r'type="number" name="q-POTHOLE-HOW_MANY"[^>]*step="any"', html)
    assert re.search(r'type="datetime-local" name="q-SAN_CODE-SEEN_AT"', html)
    assert re.search(r'<textarea name="q-FLY_DUMP-WHAT"', html)
    assert re.search(r'type="checkbox" name="q-RODENT-SIGNS" value="burrows"', html)
    assert re.search(r'type="text" name="q-LIGHT_OUT-POLE_ID"', html)
    assert "Where is the pothole?" in html
    # Required questions are marked, in words and for screen readers.
    block = html[html.index('id="field-q-POTHOLE-WHERE"') :][:600]
    assert "(required)" in block
    assert 'aria-required="true"' in block
    assert "(required)" not in html[html.index('id="field-q-POTHOLE-HOW_MANY"') :][:400]
    # Every input has a label.
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    wrapped = set(re.findall(r'<label class="choice">\s*<input[^>]*id="([^"]+)"', html))
    unlabelled = [i for i in ids if i not in labelled | wrapped]
    assert unlabelled == []
    assert '<a href="/"' in html  # base.html's link to the report page


def test_a_plain_post_files_a_web_request_and_shows_its_tracking_page(
    chicago_city: None, client: Any
) -> None:
    answer = client.post(
        "/",
        {
            "service_code": "POTHOLE",
            **WARD_42,
            "q-POTHOLE-WHERE": "crosswalk",
            "q-POTHOLE-HOW_MANY": "3",
            "q-CAVE_IN-DEPTH_CM": "not read: another category",
            "description": "Deep one by the crossing",
            "email": "dad@example.org",
            "notify": "email",
        },
    )
    created = ServiceRequest.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == f"/requests/{created.public_id}/"
    assert created.channel == Channel.WEB
    assert created.attributes == {"WHERE": "crosswalk", "HOW_MANY": 3}
    assert created.description == "Deep one by the crossing"
    assert created.reporter_email == "dad@example.org"
    assert created.location.coords == pytest.approx((-87.6230, 41.8850))
    assert ReporterPreference.objects.get(request=created).notify == "email"
    page = client.get(answer["Location"])
    assert created.public_id in page.content.decode()
    assert "dad@example.org" not in page.content.decode()


def test_a_plain_post_by_address_resolves_it(chicago_city: None, client: Any) -> None:
    AddressPoint.objects.create(
        address_id="A1",
        address="121 N LA SALLE ST",
        normalized="121 N LA SALLE ST",
        zipcode="60602",
        location=Point(LOOP[1], LOOP[0], srid=4326),
    )
    answer = client.post(
        "/",
        {"service_code": "SIDEWALK", "address": "121 North La Salle Street", "anonymous": "on"},
    )
    assert answer.status_code == 302
    created = ServiceRequest.objects.get()
    assert (created.address, created.address_id, created.zipcode) == (
        "121 N LA SALLE ST",
        "A1",
        "60602",
    )


def test_errors_are_shown_next_to_the_field_that_is_wrong(chicago_city: None, client: Any) -> None:
    answer = client.post(
        "/",
        {
            "service_code": "ABANDONED_VEHICLE",
            **WARD_42,
            "q-ABANDONED_VEHICLE-PLATE": "ABC 123",
            "email": "not-an-email",
            "notify": "sms",
        },
    )
    assert answer.status_code == 400
    html = answer.content.decode()
    assert field_errors(html, "email") == ["Enter a valid email address."]
    assert field_errors(html, "notify") == ["messages by SMS need a phone number"]
    assert ServiceRequest.objects.count() == 0
    # What the form lets through, the service checks, and its errors land on the question.
    answer = client.post(
        "/",
        {"service_code": "ABANDONED_VEHICLE", **WARD_42, "q-ABANDONED_VEHICLE-DAYS": "many"},
    )
    assert answer.status_code == 400
    html = answer.content.decode()
    assert field_errors(html, "q-ABANDONED_VEHICLE-DAYS") == [
        "must be a number, got &#x27;many&#x27;"
    ]
    assert 'aria-invalid="true"' in html
    assert 'data-field="q-ABANDONED_VEHICLE-DAYS"' in html
    # The typed value is kept.
    assert 'value="many"' in html
    answer = client.post("/", {"service_code": "ABANDONED_VEHICLE", **WARD_42})
    errors = field_errors(answer.content.decode(), "q-ABANDONED_VEHICLE-DAYS")
    assert errors == ["required: How many days has it been there?"]
    assert ServiceRequest.objects.count() == 0


def test_place_errors_name_the_place_fields(chicago_city: None, client: Any) -> None:
    html = client.post("/", {"service_code": "SIDEWALK"}).content.decode()
    assert field_errors(html, "address") == [
        "Drop a pin on the map, use your location, or type the address."
    ]
    html = client.post("/", {"service_code": "SIDEWALK", "lat": "91", "long": "0"}).content.decode()
    assert field_errors(html, "lat") == ["lat must be between -90 and 90"]
    html = client.post(
        "/", {"service_code": "SIDEWALK", "address": "1 Nowhere Lane"}
    ).content.decode()
    assert field_errors(html, "address") == [
        "no address point for &#x27;1 Nowhere Lane&#x27; (looked for &#x27;1 NOWHERE LN&#x27;)"
    ]
    # Outside the city: routing refuses it, shown on the pin's fields.
    html = client.post(
        "/", {"service_code": "SIDEWALK", "lat": "40.7128", "long": "-74.0060"}
    ).content.decode()
    [outside] = field_errors(html, "lat")
    assert "outside" in outside
    html = client.post("/", {**WARD_42}).content.decode()
    assert field_errors(html, "service_code") == ["This field is required."]
    assert ServiceRequest.objects.count() == 0


def test_every_answer_type_reaches_the_request(chicago_city: None, client: Any) -> None:
    client.post(
        "/",
        {
            "service_code": "SAN_CODE",
            **WARD_42,
            "q-SAN_CODE-NATURE": "garbage-in-alley",
            "q-SAN_CODE-SEEN_AT": "2026-03-02T07:30",
        },
    )
    client.post("/", {"service_code": "RODENT", **WARD_42, "q-RODENT-SIGNS": ["rats", "burrows"]})
    san, rodent = ServiceRequest.objects.order_by("pk")
    # A datetime-local answer is in the city's time zone (Chicago, CST in March).
    assert san.attributes == {"NATURE": "garbage-in-alley", "SEEN_AT": "2026-03-02T07:30:00-06:00"}
    assert rodent.attributes == {"SIGNS": ["rats", "burrows"]}


def test_anonymous_reports_keep_no_contact(chicago_city: None, client: Any) -> None:
    client.post(
        "/",
        {
            "service_code": "SIDEWALK",
            **WARD_42,
            "anonymous": "on",
            "email": "who@example.org",
            "phone": "312 555 0199",
            "notify": "both",
        },
    )
    created = ServiceRequest.objects.get()
    assert (created.reporter_email, created.reporter_phone) == ("", "")
    assert not ReporterPreference.objects.filter(request=created).exists()


def test_the_call_taker_files_for_a_caller_by_phone(chicago_city: None, client: Any) -> None:
    assert client.get("/staff/call/").status_code == 302  # to sign in
    client.force_login(staff_user("crew-1", CREW, "transportation"))
    assert client.get("/staff/call/").status_code == 403
    taker = staff_user("taker-1", CALL_TAKER)
    client.force_login(taker)
    page = client.get("/staff/call/").content.decode()
    assert "Caller&#x27;s first name" in page
    assert 'name="q-POTHOLE-WHERE"' in page
    answer = client.post(
        "/staff/call/",
        {
            "service_code": "POTHOLE",
            **WARD_42,
            "q-POTHOLE-WHERE": "street",
            "first_name": "Ada",
            "last_name": "Caller",
            "phone": "+1 312 555 0101",
            "notify": "sms",
        },
    )
    created = ServiceRequest.objects.get()
    assert answer.status_code == 302
    assert created.channel == Channel.PHONE
    assert created.filed_by == taker
    assert (created.reporter_first_name, created.reporter_last_name) == ("Ada", "Caller")
    assert ReporterPreference.objects.get(request=created).notify == "sms"


def test_address_search_by_prefix_and_by_typo(
    chicago_city: None, client: Any, django_assert_max_num_queries: Any
) -> None:
    for n, street in enumerate(["1600 W NORTH AVE", "1602 W NORTH AVE", "1600 N MILWAUKEE AVE"]):
        AddressPoint.objects.create(
            address_id=f"P{n}",
            address=street,
            normalized=street,
            location=Point(-87.67 + n / 1000, 41.91, srid=4326),
        )
    with django_assert_max_num_queries(1):  # found by prefix: one query
        found = client.get("/api/v1/addresses/search", {"q": "1600 West Nor"}).json()
    assert [f["address"] for f in found][0] == "1600 W NORTH AVE"
    assert found[0]["lat"] == pytest.approx(41.91)
    assert found[0]["address_id"] == "P0"
    typo = client.get("/api/v1/addresses/search", {"q": "1600 W Nrth Avenue"}).json()
    assert typo[0]["address"] == "1600 W NORTH AVE"
    assert client.get("/api/v1/addresses/search", {"q": "16"}).json() == []
    too_long = client.get("/api/v1/addresses/search", {"q": "x" * 301})
    assert too_long.status_code == 400
    assert "q" in too_long.json()


def test_follow_and_unfollow_from_the_tracking_page(chicago_city: None, client: Any) -> None:
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SIDEWALK"),
        location=Point(-87.6230, 41.8850, srid=4326),
        reporter=Reporter(email="first@example.org"),
    )
    url = f"/requests/{request.public_id}/"
    assert 'id="follow-form"' in client.get(url).content.decode()
    bad = client.post(url + "follow/", {"email": "nope"}, follow=True)
    assert "email: not an email address" in bad.content.decode()
    answer = client.post(url + "follow/", {"email": "neighbour@example.org"}, follow=True)
    html = answer.content.decode()
    assert 'id="unfollow"' in html
    assert "1 person follows it." in html
    assert "neighbour@example.org" not in html
    follower = Follower.objects.get(request=request)
    assert follower.active
    html = client.post(url + "unfollow/", follow=True).content.decode()
    follower.refresh_from_db()
    assert not follower.active
    assert 'id="follow-form"' in html
    assert "0 people follow it." in html


def test_the_tracking_page_maps_only_the_public_point(chicago_city: None, client: Any) -> None:
    exact = Point(-87.62712, 41.88213, srid=4326)
    noise = request_create(
        category=ServiceCategory.objects.get(service_code="NOISE"),
        location=exact,
        reporter=Reporter(email="neighbour@example.org"),
    )
    html = client.get(f"/requests/{noise.public_id}/").content.decode()
    shown = public_point(exact, True)
    assert f"[{round(shown.x, 6)}, {round(shown.y, 6)}]" in html
    assert "-87.62712" not in html
    assert "41.88213" not in html
    assert "neighbour@example.org" not in html


def test_the_public_map_page(chicago_city: None, client: Any) -> None:
    html = client.get("/map/").content.decode()
    assert 'id="map"' in html
    assert "/tiles/SLUG/{z}/{x}/{y}.mvt" in html
    assert '<option value="POTHOLE">' in html
    assert 'value="wards"' in html
    for name in ("category", "state", "since"):
        assert re.search(rf'<label for="filter-{name}"', html)


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_photos_come_with_the_report_cleaned_and_show_on_its_page(
    chicago_city: None, client: Any, media: Any
) -> None:
    from django.core.files.storage import default_storage
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from geo311.photos.models import Photo
    from tests.photos.test_ingest import GPS_IFD, jpeg_with_gps

    answer = client.post(
        "/",
        {
            "service_code": "SIDEWALK",
            **WARD_42,
            "photos": [
                SimpleUploadedFile("one.jpg", jpeg_with_gps(), content_type="image/jpeg"),
                SimpleUploadedFile("two.jpg", jpeg_with_gps((300, 300)), content_type="image/jpeg"),
            ],
        },
    )
    assert answer.status_code == 302
    created = ServiceRequest.objects.get()
    photos = list(Photo.objects.filter(request=created).order_by("pk"))
    assert len(photos) == 2
    with default_storage.open(photos[0].large) as f:
        image = Image.open(f)
        assert image.getexif().get_ifd(GPS_IFD) == {}
    html = client.get(answer["Location"]).content.decode()
    for photo in photos:
        urls = photo.urls()
        assert f'<a href="{urls["large"]}"><img src="{urls["thumbnail"]}"' in html


def test_a_refused_photo_files_nothing_and_names_the_file(
    chicago_city: None, client: Any, media: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.photos.test_ingest import jpeg_with_gps

    answer = client.post(
        "/",
        {
            "service_code": "SIDEWALK",
            **WARD_42,
            "photos": [
                SimpleUploadedFile("good.jpg", jpeg_with_gps(), content_type="image/jpeg"),
                SimpleUploadedFile("notes.jpg", b"%PDF-1.4 not a photo", content_type="image/jpeg"),
            ],
        },
    )
    assert answer.status_code == 400
    assert field_errors(answer.content.decode(), "photos") == [
        "notes.jpg: not an image (or a damaged one)"
    ]
    assert ServiceRequest.objects.count() == 0
    assert [p for p in media.rglob("*") if p.is_file()] == []  # good.jpg's copies went too


def test_the_pages_speak_spanish_when_the_browser_asks(chicago_city: None, client: Any) -> None:
    html = client.get("/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Reportar un problema" in html
    assert "Usar mi ubicación" in html
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SIDEWALK"),
        location=Point(-87.6230, 41.8850, srid=4326),
    )
    page = client.get(f"/requests/{request.public_id}/", HTTP_ACCEPT_LANGUAGE="es")
    assert "0 personas lo siguen." in page.content.decode()
    assert "Seguir este reporte" in page.content.decode()


LANGUAGES_ASKED = ["es", "es-MX,es;q=0.9", "fr", "", "tiles", "en-GB,en;q=0.8"]


def _language_headers(paths: list[str]) -> list[tuple]:
    from django.db import transaction
    from django.test import Client

    seen = []
    for accept in LANGUAGES_ASKED:
        client = Client(HTTP_ACCEPT_LANGUAGE=accept)
        for path in paths:
            with transaction.atomic():  # DRF's 400 marks the request's transaction for rollback
                response = client.get(path)
            seen.append((accept, path, response["Content-Language"], response["Vary"]))
            if path.startswith("/api/"):
                seen.append(response.json()["lat"][0])  # DRF's messages are translated
    return seen


def test_the_language_is_chosen_as_djangos_locale_middleware_chooses_it(
    chicago_city: None, settings: Any
) -> None:
    """geo311's LocaleMiddleware skips Django's language-prefix work (no i18n_patterns) and
    answers as Django's own: the same language, Vary and Content-Language, pages and API."""
    paths = ["/", "/api/v1/requests/nearby?lon=1", "/health"]
    ours = _language_headers(paths)
    settings.MIDDLEWARE = [
        "django.middleware.locale.LocaleMiddleware"
        if m == "geo311.middleware.LocaleMiddleware"
        else m
        for m in settings.MIDDLEWARE
    ]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE
    assert ours == _language_headers(paths)
    assert ("es", "/", "es", "Cookie, Accept-Language") in ours
    assert "Este campo es requerido." in ours
