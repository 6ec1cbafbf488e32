"""The request cell counts after bulk imports (the importer's multi-row INSERTs fire the same
statement triggers as a POST): equal to counts made from scratch, and drawn in low-zoom tiles."""

import pytest
from django.db import connection
from django.test import Client

from importers.requests import import_request_file, read_mapping
from tests.maps.conftest import MAPPING, sample_csv
from tests.maps.test_tiles import LOOP, assert_counts_current, features, fetch

pytestmark = pytest.mark.django_db


def test_imported_requests_are_counted(chicago_requests: int, tmp_path):
    assert chicago_requests > 1000
    assert_counts_current()
    # A second file on top, in this test's transaction.
    report = import_request_file(
        sample_csv(tmp_path / "fiftieth.csv", every=50), mapping=read_mapping(MAPPING)
    )
    assert report.imported > 100
    assert_counts_current()


def test_a_city_wide_tile_counts_every_request(chicago_requests: int):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo311_servicerequest")
        (total,) = cursor.fetchone()
    # Chicago fits in the z8 tile of the Loop (and the sample has no request outside the city).
    drawn = features(fetch(Client(), "requests", LOOP, 8))
    assert sum(f["properties"]["count"] for f in drawn) == total
    closed = features(fetch(Client(), "requests", LOOP, 8, "status=closed"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM geo311_servicerequest r JOIN geo311_status s"
            " ON s.id = r.status_id WHERE s.open311_status = 'closed'"
        )
        (closed_total,) = cursor.fetchone()
    assert sum(f["properties"]["count"] for f in closed) == closed_total
