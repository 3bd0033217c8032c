"""In-process fan-out of committed events to live listeners (the Server-Sent Events stream).

Each listener has a bounded queue; a listener too slow to keep up loses the
oldest events rather than slowing the engine down (a dashboard can always
re-read the current state). Webhooks do not go through here: their deliveries
are written in the engine's transaction and sent by the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from stockd.domain.events import Event

LISTENER_QUEUE = 1000


class Broadcast:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[Event]] = set()

    def publish(self, events: Iterable[Event]) -> None:
        for queue in self._listeners:
            for event in events:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
