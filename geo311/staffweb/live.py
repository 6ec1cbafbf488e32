"""Live queue counts: the department-level twin of ``geo311.notifications.live``.

The same trigger announces every new request event on ``geo311_request_events`` (a request
filed, assigned, changed); this hub LISTENs like the request hub (its reconnect loop is
inherited) but fans each announcement out to the queue streams of the request's department,
and of managers (every department). A stream only learns "something changed here" and counts
again; it never polls.
"""

import asyncio
from typing import Any

from asgiref.sync import sync_to_async

from geo311.models import ServiceRequest
from geo311.notifications.live import EventHub

# The stream key of users who watch every department (managers; staff without a department).
EVERY_DEPARTMENT = 0
CHANGED = "changed"


def _department_of(request_id: int) -> int | None:
    return (
        ServiceRequest.objects.filter(pk=request_id).values_list("department_id", flat=True).first()
    )


class QueueHub(EventHub):
    """Streams keyed by department id (or EVERY_DEPARTMENT); each gets CHANGED, or the
    inherited RESYNC after a reconnect, and counts again either way."""

    def _broadcast(self, item: Any, request_id: int | None = None) -> None:
        targets = (
            self._streams.get(request_id, set()) | self._streams.get(EVERY_DEPARTMENT, set())
            if request_id is not None
            else {q for qs in self._streams.values() for q in qs}
        )
        for queue in list(targets):
            # One pending wake-up is enough: the stream counts everything when it gets to it.
            if queue.empty():
                queue.put_nowait(item)

    async def _announce(self, payload: str) -> None:
        try:
            request_id = int(payload.split(":", 1)[0])
        except ValueError:
            return
        if not self._streams:
            return
        department_id = await sync_to_async(_department_of, thread_sensitive=False)(request_id)
        self._broadcast(CHANGED, department_id if department_id is not None else -1)


_hubs: dict[asyncio.AbstractEventLoop, QueueHub] = {}


def queue_hub() -> QueueHub:
    """This event loop's queue hub (one per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = QueueHub()
    return hub
