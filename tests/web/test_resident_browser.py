"""The resident's and the call-taker's flows in Debian's chromium on a phone-sized screen
(390x844), against real processes on the test database: gunicorn (the pages and APIs), uvicorn
(the live event stream) and a procrastinate worker (the confirmation email, to a recording SMTP
server). Screenshots of every step go to test-output/.

A resident finds their location, sees the coverage and the earlier report of the same problem
nearby, follows it instead; then files their own report (address search, questions, a phone
photo with GPS in its EXIF) and watches a staff status change arrive on its tracking page
without reloading. A call-taker files for a caller by address.
"""

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.contrib.gis.geos import Point
from PIL import Image

from geo311.models import (
    AddressPoint,
    Channel,
    Follower,
    ServiceCategory,
    ServiceRequest,
)
from geo311.photos.models import Photo
from geo311.roles import CALL_TAKER, DEPARTMENT_STAFF
from geo311.services import Reporter, request_create
from tests.browser import PHONE, live_chromium, screenshot
from tests.conftest import REPO
from tests.factories import staff_user
from tests.notifications.conftest import (
    Recorder,
    Worker,
    free_port,
    live_data_clear,
    serve,
    service_env,
    stop,
    wait_for,
)
from tests.photos.test_ingest import GPS_IFD, jpeg_with_gps

# Near Daley Plaza, in ward 42; the seeded pothole is 15 m from where the phone says it is.
SEEDED_AT = Point(-87.63020, 41.88380, srid=4326)
PHONE_AT = {"latitude": 41.88390, "longitude": -87.63010}
ADDRESS_AT = Point(-87.63185, 41.88365, srid=4326)
# Servers start in seconds; on a machine busy with a parallel test run, a minute or two.
STARTUP_S = 120


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API runs an event loop in this thread; the test reads the database
    between its steps (nothing runs concurrently on that connection)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def live_db(chicago_city: None, django_db_blocker: Any) -> Iterator[None]:
    """Committed data (the servers read it), removed after the module."""
    with django_db_blocker.unblock():
        yield
        live_data_clear(
            Photo.objects.all(),
            ServiceRequest.objects.all(),
            AddressPoint.objects.all(),
            User.objects.filter(username__startswith="web-"),
        )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def servers(
    live_db: None, smtp_server: Recorder, http_server: Recorder, media: Path, tmp_path_factory: Any
) -> Iterator[str]:
    """gunicorn and uvicorn (each told of the other: the pages link the stream, the stream
    lets the pages' origin in) and a worker; the static files collected for whitenoise."""
    static = tmp_path_factory.mktemp("static")
    web_port, asgi_port = free_port(), free_port()
    web, asgi = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{asgi_port}"
    env = service_env(
        smtp=smtp_server,
        http=http_server,
        DJANGO_STATIC_ROOT=str(static),
        DJANGO_MEDIA_ROOT=str(media),
        GEO311_SITE_URL=web,
        GEO311_EVENTS_URL=asgi,
        GEO311_EVENTS_CORS_ORIGINS=web,
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    uvicorn = serve(
        [sys.executable, "-m", "uvicorn", "geo311.asgi:application", "--host", "127.0.0.1"]
        + ["--port", str(asgi_port), "--no-access-log"],
        env,
        asgi_port,
        timeout=STARTUP_S,
    )
    gunicorn = serve(
        [sys.executable, "-m", "gunicorn", "geo311.wsgi", "-b", f"127.0.0.1:{web_port}"]
        + ["-w", "2"],
        env,
        web_port,
        timeout=STARTUP_S,
    )
    worker = Worker(env, concurrency=2)
    worker.start()
    try:
        yield web
    finally:
        worker.stop()
        stop(gunicorn)
        stop(uvicorn)


@pytest.fixture(scope="module")
def seeded(live_db: None) -> ServiceRequest:
    """An earlier open pothole report and a few address points, committed."""
    for n, (address, point) in enumerate(
        [("50 W WASHINGTON ST", ADDRESS_AT), ("52 W WASHINGTON ST", Point(-87.6320, 41.8837))]
    ):
        AddressPoint.objects.create(
            address_id=f"W{n}",
            address=address,
            normalized=address,
            zipcode="60602",
            location=Point(point.x, point.y, srid=4326),
        )
    return request_create(
        category=ServiceCategory.objects.get(service_code="POTHOLE"),
        location=SEEDED_AT,
        answers={"WHERE": ["street"]},
        description="Big pothole by the plaza",
        reporter=Reporter(email="earlier@example.org"),
    )


def server_staff(username: str, role: str, department: str = "") -> User:
    """A staff account the servers can sign in: its password hashed with a hasher of their
    settings (the test process uses a fast one they do not know), with few iterations."""
    user = staff_user(username, role, department)
    user.password = PBKDF2PasswordHasher().encode("pw-" + username, "websalt", iterations=1000)
    user.save(update_fields=["password"])
    return user


def post_json(url: str, data: dict[str, Any], token: str = "") -> Any:
    request = Request(url, data=urlencode(data).encode())
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urlopen(request, timeout=20) as answer:
        return json.loads(answer.read())


def test_a_resident_follows_a_nearby_report_files_one_with_a_photo_and_sees_it_change_live(
    servers: str, seeded: ServiceRequest, smtp_server: Recorder, media: Path, tmp_path: Path
) -> None:
    web = servers
    photo_file = tmp_path / "pothole.jpg"
    photo_file.write_bytes(jpeg_with_gps())
    with live_chromium() as browser:
        context = browser.new_context(
            viewport=PHONE, geolocation=PHONE_AT, permissions=["geolocation"], locale="en-US"
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # 1. The report page; the phone's location puts the pin and names ward and department.
        page.goto(web + "/")
        page.wait_for_selector("#map canvas")
        screenshot(page, "resident-01-report-page")
        page.click("#locate")
        page.wait_for_function("document.getElementById('id_lat').value !== ''")
        assert float(page.input_value("#id_lat")) == pytest.approx(PHONE_AT["latitude"])
        page.wait_for_selector("#coverage-areas")
        assert "Wards: 42" in page.inner_text("#coverage-areas")
        page.select_option("#id_service_code", "POTHOLE")
        page.wait_for_selector("#coverage-department")
        assert "Transportation" in page.inner_text("#coverage-department")

        # 2. The earlier report of the same problem, with "follow instead".
        candidate = page.wait_for_selector(f'li.candidate[data-id="{seeded.public_id}"]')
        assert candidate is not None
        assert "Pothole in street" in candidate.inner_text()
        assert page.is_visible("#questions-POTHOLE")
        assert not page.is_visible("#questions-CAVE_IN")
        screenshot(page, "resident-02-nearby-suggestion")
        page.click(f'li.candidate[data-id="{seeded.public_id}"] button')
        assert "email or phone" in page.inner_text("#nearby-error")  # no contact given yet
        page.fill("#id_email", "neighbour@example.org")
        page.click(f'li.candidate[data-id="{seeded.public_id}"] button')
        page.wait_for_url(f"{web}/requests/{seeded.public_id}/?following=1")
        assert "You follow this report" in page.inner_text("#follow")
        assert "1 person follows it." in page.inner_text("#followers")
        follower = Follower.objects.get(request=seeded)
        assert follower.email == "neighbour@example.org"
        screenshot(page, "resident-03-following-instead")

        # 3. Their own report: address search, questions, a photo, contact.
        page.goto(web + "/")
        page.wait_for_selector("#map canvas")
        page.fill("#id_address", "50 W Wash")
        page.wait_for_selector("#address-results button")
        page.click("#address-results button >> text=50 W WASHINGTON ST")
        page.wait_for_function("document.getElementById('id_lat').value !== ''")
        assert float(page.input_value("#id_long")) == pytest.approx(ADDRESS_AT.x)
        page.select_option("#id_service_code", "POTHOLE")
        page.select_option("#id_q-POTHOLE-WHERE", "bike-lane")
        page.fill("#id_q-POTHOLE-HOW_MANY", "2")
        page.fill("#id_description", "Two holes in the bike lane")
        page.set_input_files("#id_photos", str(photo_file))
        page.fill("#id_email", "dad@example.org")
        page.check('input[name="notify"][value="email"]')
        screenshot(page, "resident-04-report-filled")
        page.click("#submit")
        page.wait_for_url(re.compile(rf"{re.escape(web)}/requests/\d+/$"))
        public_id = page.url.rstrip("/").rsplit("/", 1)[1]
        created = ServiceRequest.objects.get(public_id=public_id)
        assert created.channel == Channel.WEB
        assert created.address == "50 W WASHINGTON ST"
        assert created.attributes == {"WHERE": "bike-lane", "HOW_MANY": 2}
        # The photo: stored without its EXIF (GPS included), shown as a thumbnail.
        [photo] = Photo.objects.filter(request=created)
        with Image.open(io.BytesIO((media / photo.large).read_bytes())) as stored:
            assert stored.getexif().get_ifd(GPS_IFD) == {}
            assert dict(stored.getexif()) == {}
        page.wait_for_function(
            "document.querySelector('#report-photos img').naturalWidth > 0", timeout=15_000
        )
        assert page.get_attribute("#report-photos a", "href") == photo.urls()["large"]
        page.wait_for_selector("#live", state="visible")  # the event stream is connected
        screenshot(page, "resident-05-tracking-page")

        # 4. Staff move it on through the staff API; the page shows it without a reload.
        server_staff("web-clerk", DEPARTMENT_STAFF, "transportation")
        token = post_json(
            web + "/api/v1/staff/token", {"username": "web-clerk", "password": "pw-web-clerk"}
        )["token"]
        post_json(
            f"{web}/api/v1/staff/requests/{public_id}/transition",
            {"status": "in-progress", "public_note": "A crew is on the way"},
            token,
        )
        page.wait_for_function(
            "document.getElementById('status').textContent === 'In progress'", timeout=30_000
        )
        assert "A crew is on the way" in page.inner_text("#history .live-event")
        screenshot(page, "resident-06-status-arrived-live")
        assert errors == []

    # The worker sent the confirmation, with the tracking link.
    mail = wait_for(
        lambda: [m for m in smtp_server.entries() if "dad@example.org" in m["to"]],
        timeout=60,
        what="the confirmation email",
    )[0]
    assert f"{web}/requests/{public_id}/" in mail["text"]


def test_a_call_taker_files_for_a_caller_by_address(servers: str, seeded: ServiceRequest) -> None:
    web = servers
    server_staff("web-taker", CALL_TAKER)
    with live_chromium() as browser:
        page = browser.new_context(viewport=PHONE).new_page()
        page.goto(web + "/staff/call/")
        page.wait_for_url(re.compile(r".*/accounts/login/.*"))
        page.fill("#id_username", "web-taker")
        page.fill("#id_password", "pw-web-taker")
        page.click("button[type=submit]")
        page.wait_for_url(f"{web}/staff/call/")
        page.fill("#id_address", "52 W Washington")
        page.click("#address-results button >> text=52 W WASHINGTON ST")
        page.wait_for_function("document.getElementById('id_lat').value !== ''")
        page.select_option("#id_service_code", "SIDEWALK")
        page.fill("#id_first_name", "Grace")
        page.fill("#id_last_name", "Caller")
        page.fill("#id_phone", "+1 312 555 0177")
        page.check('input[name="notify"][value="sms"]')
        screenshot(page, "calltaker-01-form")
        page.click("#submit")
        page.wait_for_url(re.compile(rf"{re.escape(web)}/requests/\d+/$"))
        screenshot(page, "calltaker-02-tracking-page")
        public_id = page.url.rstrip("/").rsplit("/", 1)[1]
        assert "Grace" not in page.content()
    created = ServiceRequest.objects.get(public_id=public_id)
    assert created.channel == Channel.PHONE
    assert created.filed_by == User.objects.get(username="web-taker")
    assert (created.reporter_first_name, created.reporter_phone) == ("Grace", "+1 312 555 0177")
    assert created.address == "52 W WASHINGTON ST"


def test_the_report_page_at_360_px_has_no_horizontal_scroll(servers: str) -> None:
    with live_chromium() as browser:
        page = browser.new_context(viewport={"width": 360, "height": 740}).new_page()
        page.goto(servers + "/")
        page.wait_for_selector("#map canvas")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
        # Keyboard: the first Tab reaches the skip link, and it leads to the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        screenshot(page, "resident-07-report-page-360px")


def test_the_public_map_draws_from_the_vector_tiles_with_its_filters(servers: str) -> None:
    def tile(layer: str, *params: str) -> Any:
        return lambda r: f"/tiles/{layer}/12/" in r.url and all(p in r.url for p in params)

    with live_chromium() as browser:
        page = browser.new_context(viewport=PHONE).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        with page.expect_request(tile("requests")), page.expect_request(tile("wards")):
            page.goto(servers + "/map/")
        page.wait_for_selector("#map canvas")
        filtered = tile("requests", "service_code=POTHOLE", "status=open", "from=2026-01-01")
        with page.expect_request(filtered):
            page.select_option("#filter-category", "POTHOLE")
            page.select_option("#filter-state", "open")
            page.fill("#filter-since", "2026-01-01")
            page.dispatch_event("#filter-since", "change")
        with page.expect_request(tile("police-districts")):
            page.select_option("#filter-layer", "police-districts")
        screenshot(page, "map-01-filters")
        assert errors == []
