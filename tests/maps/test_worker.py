"""Outside a test transaction: a real procrastinate worker process computes a queued analysis
(another process sees only committed rows), and the performance report reads its facts on
several connections sharing one snapshot.

A transactional test empties the database after it: this module comes last of the maps tests,
whose package makes the Chicago requests once for all of them, and holds one test."""

import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test import override_settings

from maps import performance, services, sql
from maps.filters import RequestFilter
from maps.models import AnalysisRun, RunStatus
from tests.conftest import REPO

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected"),
]


def test_a_worker_computes_a_queued_run_and_reports_read_on_several_connections(
    chicago_requests, monkeypatch
):
    run = services.analysis_request(
        kind="hotspots",
        request_filter=RequestFilter(categories=("SAN_CODE",)),
        params={"size_m": 700.0},
    )
    assert run.status == RunStatus.QUEUED
    db = connection.settings_dict
    url = f"postgis://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    worker = subprocess.run(
        [sys.executable, "manage.py", "procrastinate", "worker", "--one-shot",
         "--queues", "analysis"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-2000:]
    run.refresh_from_db()
    assert (run.status, run.progress) == (RunStatus.DONE, 100)
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.cells.count() == run.result["cells"] > 50
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [run.job_id])
        assert cursor.fetchone() == ("succeeded",)
    AnalysisRun.objects.filter(pk=run.pk).delete()

    # The same report read on one connection and on three (one snapshot, split by ids).
    services.request_facts_refresh()
    blocks = []
    fetch = sql._fetch_block
    monkeypatch.setattr(sql, "_fetch_block", lambda *a: blocks.append(1) or fetch(*a))
    reports = []
    for connections in (1, 3):
        with override_settings(GEO311_ANALYSIS_CONNECTIONS=connections):
            report = performance.performance_report(
                request_filter=RequestFilter(categories=("SAN_CODE",)), layer="wards"
            )
        report.pop("generated_at")
        reports.append(report)
    assert len(blocks) == 3
    assert reports[0]["city"]["requests"] == chicago_requests
    assert reports[0] == reports[1]

    # Hexagons binned by PostGIS alone, and from points projected on several connections and
    # binned in numpy: the same cells and counts.
    params = RequestFilter(categories=("SAN_CODE",)).params()
    in_sql = sql.hex_counts(filter_params=params, srid=32616, size_m=200.0)
    with override_settings(GEO311_ANALYSIS_CONNECTIONS=2):
        parallel = services.hex_request_counts(filter_params=params, srid=32616, size_m=200.0)
    assert len(blocks) == 5
    ours = sorted(zip(*(a.astype(int).tolist() for a in in_sql), strict=True))
    theirs = sorted(zip(*(a.astype(int).tolist() for a in parallel), strict=True))
    assert ours == theirs
    assert sum(n for _, _, n in ours) == chicago_requests
