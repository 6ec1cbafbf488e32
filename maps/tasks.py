"""Jobs of the analyses (procrastinate, in PostgreSQL): a worker started with
``manage.py procrastinate worker`` (``make run`` starts one) executes them."""

from procrastinate.contrib.django import app

from . import services


@app.task(name="maps.run_analysis", queue="analysis")
def run_analysis(run_id: int) -> None:
    """Compute an analysis run queued by ``maps.services.analysis_request``; its progress and
    result (or error) are written on the run."""
    services.analysis_execute(run_id=run_id)


# Every five minutes: performance reports read the request facts as of their last refresh.
@app.periodic(cron="*/5 * * * *", periodic_id="refresh_request_facts")
@app.task(name="maps.refresh_request_facts", queue="analysis", queueing_lock="request_facts")
def refresh_request_facts(timestamp: int) -> None:
    services.request_facts_refresh()
