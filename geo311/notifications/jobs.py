"""Deferring notification jobs on Django's own database connection, so a job commits with the
change that causes it or not at all.

procrastinate's Django app defers on Django's connection in web processes, but its worker
swaps in a connection pool of its own: a job deferred from inside a task (the fan-out queueing
one delivery job per message) would then commit on another connection, apart from the rows it
belongs to. Deferring through a job manager bound to Django's connection keeps the promise in
both places.
"""

import hashlib
from collections.abc import Sequence

from django.conf import settings
from procrastinate import manager, tasks
from procrastinate.contrib.django.django_connector import DjangoConnector
from procrastinate.types import JSONDict

QUEUE = "notifications"
FAN_OUT = "notifications.event_fan_out"
DELIVER = "notifications.deliver"

_jobs = manager.JobManager(DjangoConnector(alias="default"))


def jobs_defer(*, task_name: str, jobs: Sequence[tuple[str | None, JSONDict]]) -> list[int]:
    """Queue one job of ``task_name`` per (lock, kwargs) in the current transaction, all in one
    INSERT. Jobs sharing a lock run one at a time, in the order queued."""
    if not jobs:
        return []
    template = tasks.configure_task(name=task_name, job_manager=_jobs, queue=QUEUE).job
    deferred = _jobs.batch_defer_jobs(
        jobs=[template.evolve(lock=lock, task_kwargs=kwargs) for lock, kwargs in jobs]
    )
    return [job.id for job in deferred if job.id is not None]


def recipient_lock(*, channel: str, recipient: str, request_id: int | None) -> str:
    """The lock of a recipient's messages about one request: they go out one at a time, in
    order (a confirmation before the status change that follows it), even across retries,
    while messages about other requests (a department's mailbox gets many) go in parallel.
    Hashed: the job table is shown to staff who need not read addresses."""
    about = f"{request_id}:" if request_id is not None else ""
    digest = hashlib.sha256(f"{about}{channel}:{recipient.lower()}".encode()).hexdigest()[:24]
    return f"to:{digest}"


def request_lock(*, request_id: int) -> str:
    """The lock of a request's fan-out jobs: its events are fanned out in order."""
    return f"request:{request_id}"


def retry_strategy_settings() -> tuple[int, int]:
    """(max attempts, exponential wait base in seconds) of delivery jobs."""
    return settings.GEO311_NOTIFY_MAX_ATTEMPTS, settings.GEO311_NOTIFY_RETRY_BASE_S
