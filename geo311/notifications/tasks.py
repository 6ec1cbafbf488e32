"""The worker's jobs (procrastinate, discovered from this module): thin shells over
``geo311.notifications.services``.

Run them with ``python manage.py procrastinate worker`` (``make run`` starts one).
"""

import datetime as dt
import logging

from django.conf import settings
from procrastinate import RetryStrategy, utils
from procrastinate.contrib.django import app
from procrastinate.job_context import JobContext

from . import jobs, services

log = logging.getLogger(__name__)

MAX_ATTEMPTS, RETRY_BASE_S = jobs.retry_strategy_settings()
# Waits RETRY_BASE_S ** (attempt + 1) seconds: 2, 4, 8, ... with the default base.
RETRY = RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=RETRY_BASE_S)


@app.task(name=jobs.FAN_OUT, queue=jobs.QUEUE, retry=RETRY)
def event_fan_out(*, event_id: int) -> int:
    """Turn one event into its deliveries (and their jobs)."""
    return services.event_fan_out(event_id=event_id)


@app.task(name=jobs.DELIVER, queue=jobs.QUEUE, retry=RETRY, pass_context=True)
def deliver(context: JobContext, *, delivery_id: int) -> str:
    """Send one delivery; a failure is recorded on it and retried with backoff, the last one
    marks it failed (the admin lists it with a retry action)."""
    assert context.job is not None
    last = context.job.attempts + 1 >= MAX_ATTEMPTS
    return services.delivery_send(delivery_id=delivery_id, last_attempt=last)


@app.periodic(cron=settings.GEO311_DIGEST_CRON, periodic_id="area-digests")
@app.task(name="notifications.area_digests", queue=jobs.QUEUE, retry=RETRY)
def area_digests(timestamp: int) -> int:
    """Daily area alert digests, as of the scheduled time."""
    return services.area_digests_send(at=dt.datetime.fromtimestamp(timestamp, tz=dt.UTC))


@app.periodic(cron=settings.GEO311_DIGEST_CRON, periodic_id="overdue-digests")
@app.task(name="notifications.overdue_digests", queue=jobs.QUEUE, retry=RETRY)
def overdue_digests(timestamp: int) -> int:
    """The managers' daily overdue digest."""
    return services.overdue_digests_send(at=dt.datetime.fromtimestamp(timestamp, tz=dt.UTC))


# Every 10 seconds (procrastinate's cron takes a sixth field for seconds).
@app.periodic(cron="* * * * * */10", periodic_id="stalled-jobs")
@app.task(name="notifications.retry_stalled_jobs", queue=jobs.QUEUE, pass_context=True)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Run again the jobs of workers that stopped sending heartbeats (killed, host lost):
    without this a job a dead worker held would stay "doing" for ever. procrastinate leaves
    the policy to the application; the delivery jobs are idempotent, so running one twice
    sends nothing twice."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.GEO311_JOBS_STALLED_AFTER_S
    )
    count = 0
    for job in stalled:
        await manager.retry_job(job, retry_at=utils.utcnow())
        count += 1
    if count:
        log.warning("retried %d jobs of stalled workers", count)
    return count
