"""Live updates: one PostgreSQL LISTEN connection per server process, fanned out to the event
streams that process serves.

Every new request event is announced on the channel ``geo311_request_events`` by a trigger
(migration 0002), when its transaction commits. The hub reads each announced event once (when
some stream here watches its request) and hands it to those streams; a stream never polls
and holds no connection of its own. If the LISTEN connection drops, the hub reconnects and
tells every stream to catch up from the table (by event id), so nothing is missed.

Runs on the ASGI server's event loop (uvicorn): one hub per loop.
"""

import asyncio
import logging
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings

from geo311.models import StatusEvent

from .selectors import event_as_stream

log = logging.getLogger(__name__)

CHANNEL = "geo311_request_events"
# Put in a stream's queue when announcements may have been missed (LISTEN reconnected).
RESYNC = "resync"


# Keys of DATABASES OPTIONS that are Django's, not the driver's.
_DJANGO_OPTIONS = {
    "isolation_level",
    "assume_role",
    "server_side_binding",
    "pool",
    "cursor_factory",
}


def _conninfo() -> dict[str, Any]:
    """Django's database settings as psycopg takes them (sslmode and the like included)."""
    db = settings.DATABASES["default"]
    options = {k: v for k, v in db.get("OPTIONS", {}).items() if k not in _DJANGO_OPTIONS}
    return {
        **options,
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "application_name": "geo311 live updates",
    }


def _event(event_id: int) -> dict[str, Any] | None:
    event = StatusEvent.objects.select_related("status").filter(pk=event_id).first()
    return event_as_stream(event=event, private=True) if event else None


class EventHub:
    def __init__(self) -> None:
        self._streams: dict[int, set[asyncio.Queue[Any]]] = {}
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, request_id: int) -> asyncio.Queue[Any]:
        """A queue that receives the request's new events (as dicts, private form) and
        RESYNC markers; returns once the LISTEN is in place, so nothing committed after this
        is missed."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self._streams.setdefault(request_id, set()).add(queue)
        await self._listening.wait()
        return queue

    def unsubscribe(self, request_id: int, queue: asyncio.Queue[Any]) -> None:
        streams = self._streams.get(request_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[request_id]

    def _broadcast(self, item: Any, request_id: int | None = None) -> None:
        targets = (
            self._streams.get(request_id, set())
            if request_id is not None
            else {q for qs in self._streams.values() for q in qs}
        )
        for queue in list(targets):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:  # a stalled client: it catches up from the table
                queue.get_nowait()
                queue.put_nowait(RESYNC)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    autocommit=True, **_conninfo()
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self._broadcast(RESYNC)  # whatever was announced while we were away
                    delay = 0.5
                    async for notify in connection.notifies():
                        await self._announce(notify.payload)
            except (psycopg.Error, OSError) as exc:
                self._listening.clear()
                log.warning(
                    "live updates: LISTEN connection lost (%s); again in %.1f s", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _announce(self, payload: str) -> None:
        try:
            request_id, event_id = (int(part) for part in payload.split(":", 1))
        except ValueError:
            log.warning("live updates: unexpected payload %r", payload)
            return
        if request_id not in self._streams:
            return
        event = await sync_to_async(_event, thread_sensitive=False)(event_id)
        if event is not None:
            self._broadcast(event, request_id)


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}


def event_hub() -> EventHub:
    """This event loop's hub (one per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = EventHub()
    return hub
