"""The department queue in headless Chromium against real gunicorn and uvicorn processes: a
department's staff member signs in, filters, bulk-assigns two requests to a crew member, and
sees the live counts change when a new request arrives (filed here, committed, announced by the
database trigger, counted again by the queue stream). Screenshots in test-output/."""

from typing import Any

from django.contrib.gis.geos import Point
from playwright.sync_api import Page, expect

from geo311.models import ServiceCategory, ServiceRequest
from geo311.roles import CREW, DEPARTMENT_STAFF
from geo311.services import Reporter, request_create
from tests.browser import PHONE, screenshot
from tests.browser import live_chromium as browser
from tests.factories import staff_user
from tests.staffweb.conftest import PREFIX

WARD_42 = Point(-87.6230, 41.8850, srid=4326)
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)


def filed(code: str, point: Point, **answers: Any) -> ServiceRequest:
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        answers={k: [v] for k, v in answers.items()},
        reporter=Reporter(email="queue.reporter@example.org"),
    )


def sign_in(page: Page, site: str, username: str, then: str) -> None:
    page.goto(f"{site}/accounts/login/?next={then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}{then}")


def total(page: Page, name: str) -> str:
    return page.locator(f'[data-count="totals.{name}"]').inner_text()


def test_filter_bulk_assign_and_live_counts(web: str, browser_test: None) -> None:
    staff_user(f"{PREFIX}clerk", DEPARTMENT_STAFF, "streets-sanitation")
    staff_user(f"{PREFIX}crew", CREW, "streets-sanitation", "ward-crews")
    staff_user(f"{PREFIX}roads", DEPARTMENT_STAFF, "transportation")
    carts = [filed("SAN_CODE", WARD_42, NATURE="overflowing-carts") for _ in range(2)]
    missed = filed("MISSED_PICKUP", WICKER_PARK)
    pothole = filed("POTHOLE", WICKER_PARK, WHERE="street")

    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, web, f"{PREFIX}clerk", "/staff/queue/")

        rows = page.locator("table.queue tbody tr[data-id]")
        expect(rows).to_have_count(3)  # our department's three; not the pothole
        assert pothole.public_id not in page.content()
        expect(page.locator("#queue-map .leaflet-interactive")).to_have_count(3)
        expect(page.locator("#counts")).to_have_attribute("data-live", "1")
        assert (total(page, "open"), total(page, "unassigned")) == ("3", "3")

        # Filter: one category (the map follows the list).
        page.get_by_text("Filters", exact=True).click()
        page.get_by_label("Category").select_option(label="Sanitation code violation")
        page.get_by_role("button", name="Apply filters").click()
        expect(rows).to_have_count(2)
        expect(page.locator("#queue-map .leaflet-interactive")).to_have_count(2)
        assert missed.public_id not in page.locator("table.queue").inner_text()

        # Bulk: both to one crew member, with an internal note.
        for request in carts:
            page.get_by_label(f"Select {request.public_id}").check()
        page.get_by_label("Action").select_option("assign")
        page.get_by_label("Crew member").select_option(f"{PREFIX}crew")
        page.get_by_label("Internal note").fill("Both at the same corner")
        page.get_by_role("button", name="Apply to selected").click()
        expect(page.locator(".messages")).to_contain_text(
            f"Assigned: {carts[1].public_id}, {carts[0].public_id}"  # in the list's order
        )
        expect(rows).to_have_count(2)  # the filter is kept
        for request in carts:
            expect(page.locator(f'tr[data-id="{request.public_id}"]')).to_contain_text(
                f"{PREFIX}crew"
            )
            request.refresh_from_db()
            assert request.assignee is not None
            assert request.assignee.username == f"{PREFIX}crew"
        expect(page.locator('[data-count="totals.unassigned"]')).to_have_text("1")
        screenshot(page, "staff-queue-assigned")

        # Live: a new request of our department arrives; the counts change without a reload.
        expect(page.locator("#counts")).to_have_attribute("data-live", "1")
        marker = page.evaluate("() => (window.__unloaded = 'no')")
        filed("FLY_DUMP", WARD_42)
        expect(page.locator('[data-count="totals.open"]')).to_have_text("4")
        expect(page.locator('[data-count="totals.unassigned"]')).to_have_text("2")
        expect(
            page.locator('tr[data-status="submitted"] [data-count="submitted.open"]')
        ).to_have_text("4")
        assert page.evaluate("() => window.__unloaded") == marker  # the same page: no reload
        # Another department's new request changes nothing here.
        filed("POTHOLE", WARD_42, WHERE="street")
        filed("MISSED_PICKUP", WARD_42)
        expect(page.locator('[data-count="totals.open"]')).to_have_text("5")

        page.set_viewport_size({"width": 360, "height": 800})
        screenshot(page, "staff-queue-360")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360
        assert errors == []

    # Another department's staff member, on a phone: none of ours.
    with browser() as chromium:
        phone = chromium.new_page(viewport=PHONE)
        sign_in(phone, web, f"{PREFIX}roads", "/staff/queue/")
        expect(phone.locator("table.queue tbody tr[data-id]")).to_have_count(2)
        assert carts[0].public_id not in phone.content()
