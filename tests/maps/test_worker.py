"""A real procrastinate worker process computes a queued analysis, as ``make run``'s does.

Runs against the package's committed Chicago requests, outside any test transaction (the
worker is another process: it only sees committed rows), and removes what it made."""

import os
import subprocess
import sys

import pytest
from django.db import connection

from maps import services
from maps.filters import RequestFilter
from maps.models import AnalysisRun, RunStatus
from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected")


def test_a_worker_process_computes_a_queued_run(chicago_requests, django_db_blocker):
    with django_db_blocker.unblock():
        run = services.analysis_request(
            kind="hotspots",
            request_filter=RequestFilter(categories=("SAN_CODE",)),
            params={"size_m": 700.0},
        )
        try:
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
        finally:
            AnalysisRun.objects.filter(pk=run.pk).delete()
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM procrastinate_jobs")
