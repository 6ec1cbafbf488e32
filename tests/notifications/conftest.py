"""Real processes for the notification tests: an SMTP server and an HTTP server (Twilio and
webhook receivers) recording what they get, procrastinate workers, gunicorn and uvicorn, all
on the test database. Helpers to run the queued jobs in-process for the unit tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

from tests.conftest import REPO
from tests.notifications.servers import TWILIO_SID, TWILIO_TOKEN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgis://{quote(db['USER'] or '')}:{quote(str(db['PASSWORD'] or ''))}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def live_data_clear(*querysets: Any) -> None:
    """After a module that worked on committed data: wait until the stopped servers' and
    workers' sessions have ended (the test database cannot be dropped while they last), delete
    what the module made (``querysets``, in order) and empty the job queue."""

    def only_this_session() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0] == 0

    wait_for(only_this_session, timeout=30, what="the servers' sessions to end")
    for queryset in querysets:
        queryset.delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers,"
            " procrastinate_workers"
        )


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """``check()``'s first truthy value, or a test failure naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Recorder:
    """A receiving server process and the JSON lines it writes."""

    def __init__(self, kind: str, log: Path, *extra: str) -> None:
        self.kind, self.log, self.extra = kind, log, extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.notifications.servers",
                self.kind,
                "--port",
                str(self.port),
                "--log",
                str(self.log),
                *self.extra,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            pytest.fail(f"{self.kind} server did not start: {line!r}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        with open(self.log, encoding="utf-8") as lines:
            # Only whole lines: the server may be writing the last one.
            return [json.loads(line) for line in lines if line.endswith("\n")]

    def clear(self) -> None:
        self.log.write_text("")


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    server = Recorder("smtp", tmp_path_factory.mktemp("smtp") / "received.jsonl")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    server = Recorder("http", tmp_path_factory.mktemp("http") / "received.jsonl")
    server.start()
    yield server
    server.stop()


def service_env(*, smtp: Recorder, http: Recorder, **extra: str) -> dict[str, str]:
    """The environment of geo311 processes under test: the test database, mail to the
    recording SMTP server, SMS to the HTTP server playing Twilio, quick retries."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "geo311.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "0",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "EMAIL_TIMEOUT": "5",
        "GEO311_SMS_BACKEND": "geo311.notifications.sms.TwilioSms",
        "GEO311_TWILIO_BASE_URL": f"http://127.0.0.1:{http.port}",
        "GEO311_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "GEO311_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "GEO311_TWILIO_FROM": "+13125550100",
        "GEO311_NOTIFY_RETRY_BASE_S": "1",
        "GEO311_NOTIFY_MAX_ATTEMPTS": "40",
        "GEO311_WORKER_HEARTBEAT_S": "1",
        "GEO311_JOBS_STALLED_AFTER_S": "4",
        "PROCRASTINATE_LOG_LEVEL": "WARNING",
        **extra,
    }


class Worker:
    """``manage.py procrastinate worker`` as its own process."""

    def __init__(self, env: dict[str, str], concurrency: int = 4) -> None:
        self.env, self.concurrency = env, concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (open while the worker runs)
            prefix="worker-", suffix=".log", delete=False
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "procrastinate",
                "worker",
                "--concurrency",
                str(self.concurrency),
            ],
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )

    def kill(self) -> None:
        """SIGKILL: no goodbye, no job finished, no heartbeat stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def serve(
    command: list[str], env: dict[str, str], port: int, timeout: float = 30
) -> subprocess.Popen[bytes]:
    """Start an HTTP server process and wait until /health answers (at most ``timeout`` s)."""
    from urllib.request import urlopen

    # Its log goes to a file (a pipe nobody reads would fill and stall it), shown on failure.
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (open while the server runs)
        prefix=f"{command[2]}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
    process.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                tail = Path(log.name).read_text()[-2000:]
                pytest.fail(f"{command[2]} did not start: {tail}")
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
