"""The field view on a phone (390x844, headless Chromium) against real processes: gunicorn,
uvicorn, a procrastinate worker and the recording SMTP server. A crew member signs in, finds the
assigned request at the top of the list sorted by distance from the device, taps On site, then
Completed with a photo (a real JPEG made with Pillow) and a note; the request is completed with
the photo on its event, the public tracking page links the photo, and the reporter's "Job done"
email arrives. Screenshots in test-output/."""

import io
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from django.contrib.gis.geos import Point
from PIL import Image
from playwright.sync_api import expect
from pyproj import Geod

from geo311.models import ServiceCategory, ServiceRequest, Status, StatusEvent
from geo311.photos.models import Photo
from geo311.roles import CREW, DEPARTMENT_STAFF
from geo311.services import Actor, Reporter, request_assign, request_create, request_transition
from tests.browser import PHONE, screenshot
from tests.browser import live_chromium as browser
from tests.factories import staff_user
from tests.notifications.conftest import Recorder, Worker, wait_for
from tests.staffweb.conftest import PREFIX
from tests.staffweb.test_queue_browser import sign_in

WARD_42 = Point(-87.6230, 41.8850, srid=4326)
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)
# Where the phone says it is: a block from the ward 42 request.
DEVICE = {"latitude": 41.8862, "longitude": -87.6236}
REPORTER_EMAIL = "field.reporter@example.org"


def jpeg() -> bytes:
    """A photo as a phone sends it: a real JPEG with some detail in it."""
    image = Image.new("RGB", (1200, 900), (90, 140, 200))
    for x in range(0, 1200, 40):
        image.paste((30, 30, 30), (x, 400, x + 20, 500))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def work_for(crew: Any, clerk: Any, point: Point, email: str) -> ServiceRequest:
    request = request_create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        location=point,
        answers={"NATURE": ["overflowing-carts"]},
        reporter=Reporter(first_name="Field", email=email),
    )
    request_assign(request=request, actor=Actor(user=clerk), assignee=crew)
    request_transition(
        request=request, actor=Actor(user=clerk), status=Status.objects.get(code="assigned")
    )
    return request


def test_a_crew_member_completes_the_job_from_the_field_view(
    web: str, worker: Worker, smtp_server: Recorder, media_root: Path, browser_test: None
) -> None:
    clerk = staff_user(f"{PREFIX}fieldclerk", DEPARTMENT_STAFF, "streets-sanitation")
    crew = staff_user(f"{PREFIX}fieldcrew", CREW, "streets-sanitation", "loop-crew")
    far = work_for(crew, clerk, WICKER_PARK, "far.reporter@example.org")
    job = work_for(crew, clerk, WARD_42, REPORTER_EMAIL)
    wait_for(
        lambda: [m for m in smtp_server.entries() if REPORTER_EMAIL in m["to"]],
        timeout=60,
        what="the reporter's confirmation",
    )

    with browser() as chromium:
        context = chromium.new_context(
            viewport=PHONE,
            geolocation=DEVICE,
            permissions=["geolocation"],
            is_mobile=True,
            has_touch=True,
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, web, f"{PREFIX}fieldcrew", "/staff/field/")

        # Sorted by the server from the device location: the nearby job first, the far one next.
        expect(page.locator("#field-list")).to_have_attribute("data-sorted", "1")
        items = page.locator("#field-list li.job")
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_have_attribute("data-id", job.public_id)
        expect(items.nth(1)).to_have_attribute("data-id", far.public_id)
        _, _, metres = Geod(ellps="WGS84").inv(
            DEVICE["longitude"], DEVICE["latitude"], WARD_42.x, WARD_42.y
        )
        expect(items.nth(0).locator(".distance")).to_have_text(f"{round(metres)} m")
        expect(page.locator("#field-map .leaflet-interactive")).to_have_count(3)  # 2 jobs + me
        screenshot(page, "staff-field-list")

        card = page.locator(f"#job-{job.public_id}")
        card.get_by_role("button", name="On site").tap()
        expect(page.locator(".messages")).to_contain_text(f"{job.public_id}: Crew on site")
        assert "lat=41.886200" in page.url  # the page comes back for the same place
        expect(card.locator(".status")).to_contain_text("Crew on site")
        job.refresh_from_db()
        assert job.status.code == "on-site"

        card.get_by_text("Completed…").tap()
        card.get_by_label("Note for the resident").fill("Carts emptied and the corner swept")
        card.get_by_label("Photo of the finished work").set_input_files(
            {"name": "done.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}
        )
        screenshot(page, "staff-field-completing")
        card.get_by_role("button", name="Mark completed").tap()
        expect(page.locator(".messages")).to_contain_text(f"{job.public_id}: Completed")
        expect(page.locator(f"#job-{job.public_id}")).to_have_count(0)  # done: off the list
        expect(page.locator("#field-list li.job")).to_have_count(1)
        screenshot(page, "staff-field-done")
        width = page.evaluate("() => document.documentElement.scrollWidth")

        tracking = context.new_page()
        tracking.goto(f"{web}/requests/{job.public_id}/")
        photo_link = tracking.get_by_role("link", name="photo", exact=True)
        expect(photo_link).to_have_count(1)
        photo_href = photo_link.get_attribute("href")
        screenshot(tracking, "staff-field-tracking")
        assert errors == []
    assert width <= PHONE["width"]

    job.refresh_from_db()
    assert job.status.code == "completed"
    assert job.closed_at is not None
    event = StatusEvent.objects.get(request=job, status__code="completed")
    assert event.note == "Carts emptied and the corner swept"
    assert event.actor == f"{PREFIX}fieldcrew"
    [photo] = Photo.objects.filter(request=job)
    assert photo.event_id == event.pk
    assert (photo.width, photo.height) == (1200, 900)
    assert (media_root / photo.large).is_file()
    assert photo_href == event.photo_url
    with urlopen(event.photo_url, timeout=10) as served:
        assert served.headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(served.read())).size == (1200, 900)

    [done] = wait_for(
        lambda: [
            m
            for m in smtp_server.entries()
            if REPORTER_EMAIL in m["to"] and m["subject"].startswith("Job done")
        ],
        timeout=60,
        what="the reporter's Job done email",
    )
    assert job.public_id in done["subject"]
    assert "Carts emptied and the corner swept" in done["text"]
    assert event.photo_url in done["text"]
    assert f'src="{event.photo_url}"' in done["html"]
