"""The planner report: one HTML file with its maps and charts that opens without a network,
written by the hotspots command or served by the API."""

import re

import pytest
from django.core.management import CommandError, call_command

from tests.browser import chromium, screenshot

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected"),
]


def test_the_command_writes_a_report_that_opens_offline(chicago_requests, tmp_path, capsys):
    out = tmp_path / "report.html"
    call_command(
        "hotspots", "--category", "SAN_CODE", "--from", "2011-01-01", "--to", "2014-12-31",
        "--out", str(out), "--title", "Sanitation code complaints",
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert re.search(r"categories SAN_CODE; requested 2011-01-01 to 2014-12-31: [\d,]+ requests "
                     r"in [\d,]+ cells; [\d,]+ hot and [\d,]+ cold", printed)  # fmt: skip
    body = out.read_text()
    assert body.startswith("<!DOCTYPE html>")
    assert "<title>Sanitation code complaints</title>" in body
    # Two Leaflet maps (hot spots with clusters, density and emerging layers; equity), charts.
    assert body.count("L.map(") == 2
    assert body.count("L.geoJson(") + body.count("L.geoJSON(") >= 5
    assert "L.imageOverlay(" in body
    assert body.count('src="data:image/png;base64,') >= 4
    # Leaflet itself is inline; nothing is fetched from anywhere when the file is opened.
    assert '<script src="data:text/javascript;base64,' in body
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', body)
    assert "tile.openstreetmap.org" in body  # the optional base layer, off by default
    assert "Median days to close per wards against the city" in body
    assert len(body.encode()) < 5_000_000


def test_the_report_opens_in_a_browser_without_a_network(chicago_requests, tmp_path):
    """Chromium opens the saved report from disk: both maps draw, no script error, no
    request leaves the file (the optional OpenStreetMap layer is off)."""
    out = tmp_path / "report.html"
    call_command("hotspots", "--category", "SAN_CODE", "--from", "2013-01-01",
                 "--to", "2014-12-31", "--out", str(out), "--no-emerging")  # fmt: skip
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        fetched: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(out.as_uri())
        page.wait_for_selector(".leaflet-overlay-pane path")
        maps = page.locator(".folium-map").count()
        drawn = page.locator(".leaflet-overlay-pane path").count()
        screenshot(page, "report")
    assert errors == []
    assert [u for u in fetched if not u.startswith(("data:", "file:"))] == []
    assert maps == 2
    assert drawn > 100


def test_cells_can_be_written_for_gis(chicago_requests, tmp_path):
    import pyogrio

    out = tmp_path / "cells.gpkg"
    call_command("hotspots", "--category", "SAN_CODE", "--cells", "wards", "--out", str(out))
    frame = pyogrio.read_dataframe(out)
    assert len(frame) == 50
    assert set(frame.columns) >= {"cell", "z", "p", "q", "gi_bin", "class", "geometry"}
    csv_out = tmp_path / "cells.csv"
    call_command("hotspots", "--category", "SAN_CODE", "--cells", "wards", "--out", str(csv_out))
    assert len(csv_out.read_text().splitlines()) == 51


def test_the_command_names_what_is_wrong(chicago_requests, tmp_path):
    with pytest.raises(CommandError, match="--out must end in one of"):
        call_command("hotspots", "--out", str(tmp_path / "report.pdf"))
    with pytest.raises(CommandError, match="unknown category NOPE"):
        call_command("hotspots", "--category", "NOPE", "--out", str(tmp_path / "r.html"))
    with pytest.raises(CommandError, match="not a date"):
        call_command("hotspots", "--from", "last year", "--out", str(tmp_path / "r.html"))
