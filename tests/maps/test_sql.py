"""The binning statements: each request in the PostGIS hexagon that contains it, each in the
boundary that covers it, counted once."""

import datetime as dt

import numpy as np
import pytest
from django.db import connection
from scipy.spatial import cKDTree

from maps import analysis, selectors, sql
from maps.filters import RequestFilter

pytestmark = pytest.mark.django_db

ALL = RequestFilter().params()


def test_each_request_is_in_the_st_hexagongrid_cell_that_contains_it(chicago_requests):
    srid = selectors.analysis_srid()
    i, j, n = sql.hex_counts(filter_params=ALL, srid=srid, size_m=300.0)
    ours = {(int(a), int(b)): int(c) for a, b, c in zip(i, j, n, strict=True)}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH pts AS (SELECT ST_Transform(location, %(srid)s) AS g
                         FROM geo311_servicerequest)
            SELECT h.i, h.j, count(*)
            FROM pts
            CROSS JOIN LATERAL ST_HexagonGrid(300, ST_Expand(pts.g, 1)) h
            WHERE ST_Intersects(h.geom, pts.g)
            GROUP BY 1, 2
            """,
            {"srid": srid},
        )
        postgis = {(a, b): c for a, b, c in cursor.fetchall()}
    assert sum(ours.values()) == chicago_requests
    # A point on an edge belongs to two PostGIS cells (ST_Intersects), to one of ours.
    assert sum(postgis.values()) - sum(ours.values()) < chicago_requests * 0.001
    assert set(ours) <= set(postgis)
    differ = [cell for cell in ours if ours[cell] != postgis[cell]]
    assert len(differ) < len(ours) * 0.01


def test_cells_within_the_outline_cover_the_city(chicago_requests):
    srid = selectors.analysis_srid()
    wi, wj = sql.hex_cells_within(
        version_ids=selectors.jurisdiction_version_ids(), srid=srid, size_m=500.0
    )
    # Chicago is about 606 km²; a 500 m hexagon is 0.6495 km².
    assert 850 < len(wi) < 1000
    i, j, _ = sql.hex_counts(filter_params=ALL, srid=srid, size_m=500.0)
    inside = set(zip(wi.astype(int), wj.astype(int), strict=True))
    outside = [c for c in zip(i.astype(int), j.astype(int), strict=True) if c not in inside]
    # Cells holding requests but centred outside the outline are on its edge: next to a cell
    # inside it (centres one hexagon apart, 500 m × √3).
    tree = cKDTree(analysis.hex_centres(wi, wj, size_m=500.0))
    distance, _ = tree.query(analysis.hex_centres(*np.array(outside).T, size_m=500.0))
    assert distance.max() == pytest.approx(500.0 * np.sqrt(3.0))


def test_boundary_counts_match_the_routed_wards(chicago_requests):
    version = selectors.layer_active_version(slug="wards")
    rows = sql.boundary_counts(filter_params=ALL, version_id=version.pk, srid=32616)
    counts = {code: n for code, n, _, _ in rows}
    assert len(counts) == 50
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b ->> 'code', count(*) FROM geo311_servicerequest r, "
            "jsonb_array_elements(r.routing -> 'boundaries') b "
            "WHERE b ->> 'layer' = 'wards' GROUP BY 1"
        )
        routed = dict(cursor.fetchall())
    assert counts == {code: routed.get(code, 0) for code in counts}
    xs = np.array([x for _, _, x, _ in rows])
    assert xs.min() > 420_000  # UTM 16N eastings of Chicago
    assert xs.max() < 460_000


def test_filters_select_by_date_category_and_status(chicago_requests):
    srid = 32616
    total = sql.hex_counts(filter_params=ALL, srid=srid, size_m=500.0)[2].sum()
    year = RequestFilter(start=dt.date(2012, 1, 1), end=dt.date(2012, 12, 31)).params()
    in_2012 = sql.hex_counts(filter_params=year, srid=srid, size_m=500.0)[2].sum()
    open_now = RequestFilter(statuses=("open",)).params()
    still_open = sql.hex_counts(filter_params=open_now, srid=srid, size_m=500.0)[2].sum()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE requested_at >= '2012-01-01 06:00+00' "
            "AND requested_at < '2013-01-01 06:00+00'), count(*) FILTER (WHERE closed_at IS NULL) "
            "FROM geo311_servicerequest"
        )
        expected_2012, expected_open = cursor.fetchone()
    assert total == chicago_requests
    assert in_2012 == expected_2012 > 1000
    assert still_open == expected_open > 0
