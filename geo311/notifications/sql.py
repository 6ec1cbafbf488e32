"""SQL of notifications that the ORM (or procrastinate's API) cannot say.

``FAN_OUT_JOBS_FOR_EVENTS``: the job ``event_notify`` queues, as a statement a writer can fold
into the INSERT that writes the events (a data-modifying CTE), so a request, its first event
and its notification job take one round trip. It writes the row procrastinate's own
``procrastinate_defer_jobs_v1`` writes (queue, task, lock, args; priority and the rest from the
table's defaults), and procrastinate's triggers on the table run as for any job (the worker is
woken). ``tests/notifications/test_services.py`` holds the two ways to the same row.

Use: ``WITH ev AS (INSERT INTO geo311_statusevent ... RETURNING id, request_id)
INSERT INTO procrastinate_jobs ... SELECT ... FROM ev`` with the fragment below after ``ev``.
"""

# The fan-out jobs of the event rows of a CTE named ``ev`` (columns id, request_id). The queue,
# task and lock are jobs.QUEUE, jobs.FAN_OUT and jobs.request_lock (the test compares the rows).
FAN_OUT_JOBS_FOR_EVENTS = """
INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args)
SELECT 'notifications', 'notifications.event_fan_out', 'request:' || ev.request_id,
       jsonb_build_object('event_id', ev.id)
FROM ev
"""
