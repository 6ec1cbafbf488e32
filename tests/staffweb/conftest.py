"""Real processes for the staff pages' browser tests: gunicorn serving the pages (static files
collected as in a deployment), uvicorn serving the live streams across origins, a procrastinate
worker and the recording SMTP server, all on the committed test database."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from geo311.models import ServiceRequest
from tests.conftest import REPO
from tests.notifications import conftest as notifications
from tests.notifications.conftest import (
    Recorder,
    Worker,
    free_port,
    live_data_clear,
    serve,
    service_env,
    stop,
)

# The recording SMTP and HTTP servers of the notification tests, for the modules here.
smtp_server = notifications.smtp_server
http_server = notifications.http_server

# Staff accounts of the browser tests start with this (removed after each module).
PREFIX = "sw-"


@pytest.fixture
def browser_test(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a browser test in this process needs: accounts that sign in through the served
    pages hashed by a hasher those processes know (the tests' fast one is this process's only),
    and the database usable while Playwright's sync API runs its event loop in this thread
    (Django would take that for an async context)."""
    from django.conf import global_settings

    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def live_db(chicago_city: None, django_db_blocker: Any) -> Iterator[None]:
    """The module works on committed data (its processes read it); cleaned up after."""
    with django_db_blocker.unblock():
        yield
        live_data_clear(
            ServiceRequest.objects.all(), User.objects.filter(username__startswith=PREFIX)
        )


@pytest.fixture(scope="module")
def env(
    live_db: None, smtp_server: Recorder, http_server: Recorder, tmp_path_factory: Any
) -> dict[str, str]:
    media = tmp_path_factory.mktemp("media")
    static = tmp_path_factory.mktemp("static")
    values = service_env(
        smtp=smtp_server,
        http=http_server,
        DJANGO_MEDIA_ROOT=str(media),
        DJANGO_STATIC_ROOT=str(static),
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO,
        env=values,
        check=True,
    )
    return values


@pytest.fixture(scope="module")
def media_root(env: dict[str, str]) -> Path:
    return Path(env["DJANGO_MEDIA_ROOT"])


@pytest.fixture(scope="module")
def worker(env: dict[str, str]) -> Iterator[Worker]:
    process = Worker(env)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def web(env: dict[str, str]) -> Iterator[str]:
    """gunicorn for the pages and uvicorn for the streams, the streams' CORS open to the
    pages' origin (ports chosen first, so each knows the other)."""
    web_port, asgi_port = free_port(), free_port()
    site, streams = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{asgi_port}"
    asgi = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "geo311.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(asgi_port),
            "--no-access-log",
        ],
        {**env, "GEO311_EVENTS_CORS_ORIGINS": site, "GEO311_SITE_URL": site},
        asgi_port,
    )
    wsgi = serve(
        [sys.executable, "-m", "gunicorn", "geo311.wsgi", "-b", f"127.0.0.1:{web_port}", "-w", "2"],
        {**env, "GEO311_EVENTS_URL": streams, "GEO311_SITE_URL": site},
        web_port,
    )
    yield site
    stop(wsgi)
    stop(asgi)
