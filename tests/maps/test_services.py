"""Analysis runs end to end on real Chicago complaints: asked, executed, stored, reused."""

import datetime as dt
import json

import numpy as np
import pytest
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from pyproj import Transformer
from scipy.stats import norm
from sklearn.cluster import DBSCAN

from boundaries.models import Boundary
from geo311.models import Department, ServiceCategory, ServiceRequest, Status
from maps import analysis, selectors, services, sql
from maps.filters import RequestFilter
from maps.models import AnalysisRun, HotspotCell, RunStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected"),
]

SANITATION = RequestFilter(categories=("SAN_CODE",), start=dt.date(2011, 1, 1),
                           end=dt.date(2014, 12, 31))  # fmt: skip


def executed(kind: str, request_filter: RequestFilter = SANITATION, **params) -> AnalysisRun:
    run = services.analysis_request(
        kind=kind, request_filter=request_filter, params=params, defer=False
    )
    return services.analysis_execute(run_id=run.pk)


def in_filter(request_filter: RequestFilter) -> int:
    p = request_filter.params()
    return ServiceRequest.objects.filter(
        category_id__in=p["category_ids"], requested_at__gte=p["start"], requested_at__lt=p["end"]
    ).count()


def test_a_hotspot_run_stores_hexagons_with_their_gi_star(chicago_requests):
    run = executed("hotspots")
    assert (run.status, run.progress, run.message) == (RunStatus.DONE, 100, "done")
    summary = run.result
    cells = list(HotspotCell.objects.filter(run=run).order_by("cell"))
    assert len(cells) == summary["cells"] == summary["stored"]
    assert sum(c.count for c in cells) == summary["requests"] == in_filter(SANITATION)
    assert summary["srid"] == 32616
    assert summary["band_m"] == 875.0  # two rings of 250 m hexagons
    # Empty hexagons inside the city are analysed too (as zeros).
    assert sum(1 for c in cells if c.count == 0) > 100
    for cell in cells[:50]:
        assert cell.hotspot_class == analysis.hotspot_class(cell.gi_bin)
        assert cell.p == pytest.approx(2 * norm.sf(abs(cell.z)))
        assert len(cell.geom[0][0]) == 7  # a closed hexagon
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(ST_Area(geom::geography)), max(ST_Area(geom::geography)) "
            "FROM maps_hotspotcell WHERE run_id = %s",
            [run.pk],
        )
        smallest, largest = cursor.fetchone()
    hexagon = 3 * np.sqrt(3) / 2 * 250.0**2  # m², in the projected plane
    assert smallest == pytest.approx(hexagon, rel=0.002)
    assert largest == pytest.approx(hexagon, rel=0.002)
    # The stored z-scores are Gi* of the stored counts on their centres.
    i, j = np.array([[int(v) for v in c.cell.split(":")] for c in cells]).T
    xy = analysis.hex_centres(i, j, size_m=250.0)
    again = analysis.gi_star(
        np.array([c.value for c in cells]), analysis.distance_band_weights(xy, band_m=875.0)
    )
    assert np.abs(again.z - np.array([c.z for c in cells])).max() < 1e-9
    assert summary["hot"] == sum(1 for c in cells if c.gi_bin > 0) > 0
    assert summary["cold"] == sum(1 for c in cells if c.gi_bin < 0) > 0


def test_the_same_question_is_answered_from_the_store_until_the_data_changes(
    chicago_requests, settings
):
    first = executed("hotspots", size_m=400.0)
    again = services.analysis_request(
        kind="hotspots", request_filter=SANITATION, params={"size_m": 400.0}
    )
    assert again.pk == first.pk
    assert again.status == RunStatus.DONE
    # Another question: another run, queued as a job.
    other = services.analysis_request(
        kind="hotspots", request_filter=SANITATION, params={"size_m": 500.0}
    )
    assert other.pk != first.pk
    assert other.status == RunStatus.QUEUED
    assert other.job_id is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT task_name, args FROM procrastinate_jobs WHERE id = %s", [other.job_id]
        )
        task, args = cursor.fetchone()
    assert (task, json.loads(args)) == ("maps.run_analysis", {"run_id": other.pk})
    # A new request changes the data version: the stored answer still applies while it is
    # younger than GEO311_ANALYSIS_MAX_AGE, and no longer after.
    ServiceRequest.objects.create(
        category=ServiceCategory.objects.get(service_code="SAN_CODE"),
        department=Department.objects.get(slug="streets-sanitation"),
        status=Status.objects.get(code="submitted"),
        location=Point(-87.65, 41.85, srid=4326),
        requested_at=timezone.now(),
        updated_at=timezone.now(),
    )
    recent = services.analysis_request(
        kind="hotspots", request_filter=SANITATION, params={"size_m": 400.0}
    )
    assert recent.pk == first.pk
    settings.GEO311_ANALYSIS_MAX_AGE = 0
    after = services.analysis_request(
        kind="hotspots", request_filter=SANITATION, params={"size_m": 400.0}
    )
    assert after.pk != first.pk
    assert not AnalysisRun.objects.filter(pk=first.pk).exists()  # replaced, cells and all
    assert after.data_version != first.data_version
    # refresh asks again for the same data.
    fresh = services.analysis_request(
        kind="hotspots", request_filter=SANITATION, params={"size_m": 400.0}, refresh=True
    )
    assert fresh.pk != after.pk
    assert not AnalysisRun.objects.filter(pk=after.pk).exists()


def test_boundary_cells_are_the_wards_with_k_nearest_neighbours(chicago_requests):
    run = executed("hotspots", cells="wards")
    assert run.result["weights"] == "knn"
    assert run.result["k"] == 8
    cells = {c.cell: c for c in HotspotCell.objects.filter(run=run)}
    assert len(cells) == 50
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b ->> 'code', count(*) FROM geo311_servicerequest r, "
            "jsonb_array_elements(r.routing -> 'boundaries') b WHERE b ->> 'layer' = 'wards' "
            "AND r.category_id = %s AND r.requested_at >= %s AND r.requested_at < %s "
            "GROUP BY 1",
            [SANITATION.params()["category_ids"][0], SANITATION.params()["start"],
             SANITATION.params()["end"]],
        )  # fmt: skip
        routed = dict(cursor.fetchall())
    assert {code: c.count for code, c in cells.items()} == {
        code: routed.get(code, 0) for code in cells
    }
    ward = Boundary.objects.get(version__layer__slug="wards", version__status="active", code="42")
    assert cells["42"].geom.equals_exact(ward.geom, 1e-9)


def test_rates_against_a_denominator(chicago_requests):
    # Residents, say: a point at the centre of every 250 m hexagon of the city, 100 people
    # each, 300 in the north half: a hot spot of counts there is not one of rates.
    srid = 32616
    outline = selectors.jurisdiction_version_ids()
    wi, wj = sql.hex_cells_within(version_ids=outline, srid=srid, size_m=250.0)
    xy = analysis.hex_centres(wi, wj, size_m=250.0)
    lon, lat = Transformer.from_crs(srid, 4326, always_xy=True).transform(xy[:, 0], xy[:, 1])
    people = np.where(lat > 41.88, 300.0, 100.0)
    denominator = services.denominator_load(
        slug="residents", name="Residents", unit="residents", source="test",
        points=list(zip(lon.tolist(), lat.tolist(), people.tolist(), strict=True)),
    )  # fmt: skip
    assert denominator.points.count() == len(wi)
    counts = executed("hotspots")
    rates = executed("hotspots", normalize="residents")
    by_cell = {c.cell: c for c in rates.cells.all()}
    some = next(c for c in by_cell.values() if c.count > 3)
    assert some.value == pytest.approx(some.count / some.denominator)
    assert some.denominator in (100.0, 300.0)
    # Every hexagon inside the city has residents; cells with requests outside do not.
    assert rates.result["excluded_without_denominator"] == sum(
        1 for c in counts.cells.all() if c.count and c.cell not in by_cell
    )
    assert rates.result["hot"] != counts.result["hot"]


def test_an_emerging_run_slices_months_and_finds_trends(chicago_requests):
    run = executed("emerging")
    assert run.result["slices"] == 48
    assert run.result["first_slice"] == "2011-01-01T06:00:00+00:00"
    cells = list(run.cells.all())
    assert len(cells) == run.result["cells"]
    assert all(len(c.series) == 48 for c in cells)
    names = {c.hotspot_class for c in cells}
    allowed = {f"{p}_{s}" for p in analysis.PATTERNS for s in ("hot", "cold")} | {"no_pattern"}
    assert names <= allowed
    assert len(names) > 1
    for cell in cells:
        assert cell.z == pytest.approx(cell.series[-1], abs=1e-4)  # the last month's Gi*
        assert cell.trend_p is not None


def test_too_few_months_for_a_trend_fail_the_run_with_the_reason(chicago_requests):
    short = RequestFilter(categories=("SAN_CODE",), start=dt.date(2012, 1, 1),
                          end=dt.date(2012, 2, 15))  # fmt: skip
    run = services.analysis_request(kind="emerging", request_filter=short, defer=False)
    with pytest.raises(analysis.AnalysisError, match="2 months are too few"):
        services.analysis_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.message.startswith("2 months are too few for a trend")
    # A failed question may be asked again.
    again = services.analysis_request(kind="emerging", request_filter=short, defer=False)
    assert again.pk != run.pk


def test_clusters_are_dbscan_in_metres(chicago_requests):
    run = executed("clusters", eps_m=60.0, min_points=4)
    clusters = list(run.clusters.all())
    assert len(clusters) == run.result["clusters"] > 10
    assert all(c.size == len(c.request_ids) >= 4 for c in clusters)
    p = SANITATION.params()
    rows = list(
        ServiceRequest.objects.filter(
            category_id__in=p["category_ids"], requested_at__gte=p["start"],
            requested_at__lt=p["end"],
        ).values_list("pk", "location")
    )  # fmt: skip
    to_utm = Transformer.from_crs(4326, 32616, always_xy=True)
    x, y = to_utm.transform([loc.x for _, loc in rows], [loc.y for _, loc in rows])
    labels = DBSCAN(eps=60.0, min_samples=4).fit_predict(np.column_stack([x, y]))
    clustered = {pk for (pk, _), label in zip(rows, labels, strict=True) if label >= 0}
    ours = {pk for c in clusters for pk in c.request_ids}
    # scikit-learn and PostGIS agree on which requests are clustered and how many clusters
    # there are (a border point within eps of two clusters may join either).
    assert ours == clustered
    assert len(clusters) == len(set(labels) - {-1})
    biggest = clusters[0]
    assert biggest.size == max(c.size for c in clusters)
    assert biggest.first_at <= biggest.last_at


def test_density_keeps_every_request(chicago_requests):
    run = executed("density", bandwidth_m=400.0)
    values = np.array(run.result["values"])
    cell = run.result["cell_m"]
    assert cell == 80.0
    assert values.sum() * cell * cell / 1e6 == pytest.approx(run.result["requests"], rel=0.01)
    (south, west), (north, east) = run.result["bounds"]
    assert 41.6 < south < north < 42.1
    assert -87.95 < west < east < -87.5


def test_parameters_are_checked_and_named(chicago_requests):
    with pytest.raises(ValidationError) as caught:
        services.analysis_request(kind="hotspots", request_filter=SANITATION, params={"sizes": 5})
    assert caught.value.message_dict == {"sizes": ["not a parameter of hotspots analyses"]}
    with pytest.raises(ValidationError) as caught:
        services.analysis_request(
            kind="hotspots", request_filter=SANITATION, params={"cells": "nowhere"}
        )
    assert "cells" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.analysis_request(
            kind="hotspots", request_filter=RequestFilter(categories=("NOPE",))
        )
    assert caught.value.message_dict == {"category": ["unknown category NOPE"]}
    with pytest.raises(ValidationError) as caught:
        services.analysis_request(kind="clusters", request_filter=SANITATION, params={"eps_m": -1})
    assert "eps_m" in caught.value.message_dict
