"""The analysis API: who may use it, runs asked and polled, results and exports, performance
reports, the HTML report."""

import datetime as dt
import io
import json
import re

import pyogrio
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from maps import services
from maps.filters import RequestFilter
from maps.models import AnalysisRun

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected"),
]

API = "/api/v1/analysis/"
QUERY = {"category": "SAN_CODE", "from": "2012-01-01", "to": "2013-12-31"}


def finish(run_id: int) -> None:
    """What the worker does with a queued run."""
    services.analysis_execute(run_id=run_id)


def ask_and_finish(client: Client, path: str, **params: str) -> dict:
    response = client.get(API + path, {**QUERY, **params})
    assert response.status_code == 202, response.content
    finish(response.json()["id"])
    done = client.get(API + path, {**QUERY, **params})
    assert done.status_code == 200
    return done.json()


@pytest.mark.parametrize(
    ("staff", "allowed", "expected"),
    [(False, False, 403), (True, False, 403), (False, True, 403)],
)
def test_only_staff_with_view_reports_may_ask(chicago_requests, staff, allowed, expected):
    user = User.objects.create_user("someone", password="x-311-password", is_staff=staff)
    if allowed:
        user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    client = Client()
    client.force_login(user)
    for path in ("hotspots", "runs/", "report.html"):
        response = client.get(API + path, QUERY)
        assert response.status_code == expected, path
        assert "view_reports" in response.json()["detail"]
    assert not AnalysisRun.objects.exists()
    # The performance report last: it reads outside the request's transaction, and DRF marks
    # the test's own transaction for rollback when such a view refuses.
    response = client.get(API + "performance", QUERY)
    assert response.status_code == expected
    assert "view_reports" in response.json()["detail"]


def test_anonymous_callers_are_refused(chicago_requests):
    response = Client().get(API + "hotspots", QUERY)
    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_basic_authentication_works_for_scripts(chicago_requests, planner):
    response = Client().get(
        API + "performance", {**QUERY, "detail": "false"},
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
            b"planner:planner-password-311").decode(),
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["city"]["requests"] > 0


def test_a_hotspot_run_is_queued_polled_and_served(chicago_requests, planner_client):
    asked = planner_client.get(API + "hotspots", {**QUERY, "size": "300"})
    assert asked.status_code == 202
    run = asked.json()
    assert (run["status"], run["kind"], run["params"]["size_m"]) == ("queued", "hotspots", 300.0)
    assert asked["Location"] == f"{API}runs/{run['id']}/"
    assert run["filter"] == {
        "categories": ["SAN_CODE"],
        "departments": [],
        "statuses": [],
        "start": "2012-01-01",
        "end": "2013-12-31",
    }
    # Until the worker is done, the GeoJSON form answers the run too.
    pending = planner_client.get(API + "hotspots.geojson", {**QUERY, "size": "300"})
    assert pending.status_code == 202
    assert pending.json()["id"] == run["id"]
    finish(run["id"])
    detail = planner_client.get(run["links"]["self"]).json()
    assert (detail["status"], detail["progress"]) == ("done", 100)
    assert detail["result"]["cells"] > 100
    cells = planner_client.get(API + "hotspots.geojson", {**QUERY, "size": "300"})
    assert cells.status_code == 200
    assert cells["Content-Type"] == "application/geo+json"
    collection = cells.json()
    assert len(collection["features"]) == detail["result"]["cells"]
    props = collection["features"][0]["properties"]
    assert set(props) >= {"cell", "count", "z", "p", "q", "gi_bin", "class"}
    assert collection["features"][0]["geometry"]["type"] == "MultiPolygon"
    # Exports: CSV with a point per cell, GeoPackage that GDAL reads back.
    csv_text = planner_client.get(run["links"]["cells_csv"]).content.decode()
    header = csv_text.splitlines()[0].split(",")
    assert {"cell", "z", "gi_bin", "class", "lon", "lat"} <= set(header)
    assert len(csv_text.splitlines()) == len(collection["features"]) + 1
    gpkg = planner_client.get(run["links"]["cells_gpkg"])
    assert gpkg["Content-Disposition"].endswith('.gpkg"')
    frame = pyogrio.read_dataframe(io.BytesIO(gpkg.content), layer="hotspots_cells")
    assert len(frame) == len(collection["features"])
    assert frame.crs.to_epsg() == 4326


def test_runs_list_costs_the_same_queries_however_many_runs(
    chicago_requests, planner_client, django_assert_num_queries
):
    for size in (300, 400):
        planner_client.get(API + "hotspots", {**QUERY, "size": str(size)})
    # The request's savepoint and its release, session, user, its permissions (2), the runs.
    with django_assert_num_queries(7):
        first = planner_client.get(API + "runs/")
    for size in (500, 600, 700):
        planner_client.get(API + "hotspots", {**QUERY, "size": str(size)})
    with django_assert_num_queries(7):
        second = planner_client.get(API + "runs/")
    assert (len(first.json()), len(second.json())) == (2, 5)


def test_unknown_runs_and_results_of_another_kind_are_404(chicago_requests, planner_client):
    assert planner_client.get(API + "runs/99999/").status_code == 404
    clusters = ask_and_finish(planner_client, "clusters", eps="80")
    response = planner_client.get(f"{API}runs/{clusters['id']}/cells.geojson")
    assert response.status_code == 404
    assert "clusters run" in response.json()["detail"]


def test_clusters_and_their_exports(chicago_requests, planner_client):
    run = ask_and_finish(planner_client, "clusters", eps="80", min_points="4")
    assert run["result"]["clusters"] > 0
    params = {**QUERY, "eps": "80", "min_points": "4"}
    collection = planner_client.get(API + "clusters.geojson", params).json()
    first = collection["features"][0]["properties"]
    assert len(first["request_ids"]) == first["size"] >= 4
    gpkg = planner_client.get(run["links"]["clusters_gpkg"]).content
    assert len(pyogrio.read_dataframe(io.BytesIO(gpkg))) == run["result"]["clusters"]


def test_density_as_an_overlay_and_a_grid(chicago_requests, planner_client):
    run = ask_and_finish(planner_client, "density", bandwidth="500")
    png = planner_client.get(run["links"]["png"])
    assert png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    south, west, north, east = (float(v) for v in png["X-Bounds"].split(","))
    assert south < north
    assert west < east
    grid = planner_client.get(run["links"]["grid"]).json()
    assert grid["unit"] == "requests per km²"
    assert len(grid["values"]) == grid["shape"][0]


def test_input_errors_name_the_field(chicago_requests, planner_client):
    cases = [
        ({"from": "2012-13-01"}, "from"),
        ({"from": "2013-01-01", "to": "2012-01-01"}, "to"),
        ({"category": "NOPE"}, "category"),
        ({"cells": "parishes"}, "cells"),
        ({"weights": "gravity"}, "weights"),
        ({"status": "lost"}, "status"),
    ]
    for params, field in cases:
        response = planner_client.get(API + "hotspots", {**QUERY, **params})
        assert response.status_code == 400, params
        assert field in response.json(), (params, response.json())
    response = planner_client.get(API + "performance", {**QUERY, "layer": "parishes"})
    assert response.status_code == 400
    assert response.json() == {"layer": ["no boundary layer 'parishes'"]}


def test_performance_json_csv_charts_and_equity(chicago_requests, planner_client):
    report = planner_client.get(API + "performance", {**QUERY, "detail": "false"}).json()
    assert report["layer"] == "wards"
    assert report["city"]["requests"] == sum(r["requests"] for r in report["by_month"])
    assert [r["month"] for r in report["by_month"]][:2] == ["2012-01", "2012-02"]
    assert report["detail"] == []
    csv_rows = (
        planner_client.get(API + "performance.csv", {**QUERY, "table": "by_month"})
        .content.decode()
        .splitlines()
    )
    assert csv_rows[0].startswith("month,requests,closed,acknowledged")
    assert len(csv_rows) == 25
    detail = planner_client.get(API + "performance.csv", QUERY).content.decode().splitlines()
    assert detail[0].startswith("department,category,area,month,requests")
    charts = planner_client.get(API + "performance/charts", QUERY).json()["charts"]
    assert charts["trend"].startswith("data:image/png;base64,")
    assert charts["equity"].startswith("data:image/png;base64,")
    assert charts["categories"] == ""  # one category: nothing to compare
    equity = planner_client.get(API + "equity.geojson", QUERY)
    assert equity["Content-Type"] == "application/geo+json"
    features = equity.json()["features"]
    assert len(features) == 50
    assert sum(f["properties"]["closed"] for f in features) <= report["city"]["closed"]


def test_the_report_waits_for_its_runs_then_opens_offline(chicago_requests, planner_client):
    params = {**QUERY, "from": "2013-01-01"}
    pending = planner_client.get(API + "report.html", params)
    assert pending.status_code == 202
    runs = pending.json()
    assert {r["kind"] for r in runs} == {"hotspots", "emerging", "clusters", "density"}
    for run in runs:
        finish(run["id"])
    report = planner_client.get(API + "report.html", params)
    assert report.status_code == 200
    assert report["Content-Type"] == "text/html; charset=utf-8"
    body = report.content.decode()
    assert "<h2>Where problems concentrate</h2>" in body
    assert "<h2>Emerging hot spots</h2>" in body
    assert "Equity: days to close per wards" in body
    assert body.count("L.map(") == 2
    assert not re.findall(r'(?:src|href)="https?://', body)


def test_the_schema_documents_the_analysis_api(chicago_requests, planner_client):
    schema = planner_client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    for path in ("hotspots", "hotspots.geojson", "emerging", "clusters", "density",
                 "performance", "performance.csv", "equity.geojson", "report.html",
                 "runs/{id}/cells.{fmt}"):  # fmt: skip
        assert API + path in paths, path


def test_a_date_range_in_the_citys_time_zone(chicago_requests):
    params = RequestFilter(start=dt.date(2012, 1, 1), end=dt.date(2012, 1, 31)).params()
    assert params["start"].isoformat() == "2012-01-01T06:00:00+00:00"  # Chicago midnight
    assert params["end"].isoformat() == "2012-02-01T06:00:00+00:00"


def test_cells_cost_the_same_queries_whatever_their_number(
    chicago_requests, planner_client, django_assert_num_queries
):
    small = ask_and_finish(planner_client, "hotspots", size="1500")
    large = ask_and_finish(planner_client, "hotspots", size="300")
    assert large["result"]["cells"] > 10 * small["result"]["cells"]
    for run in (small, large):
        # Savepoint, session, user, permissions (2), the run, its cells as GeoJSON, release.
        with django_assert_num_queries(8):
            response = planner_client.get(run["links"]["cells_geojson"])
        assert len(response.json()["features"]) == run["result"]["cells"]
