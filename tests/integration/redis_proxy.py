"""A TCP proxy in front of Redis that loses one reply on its way back, as a Redis killed mid-reply does.

Redis has carried the command out (and, with ``appendfsync always``, written it
to disk); the client only sees its connection drop. What the client does next
decides whether that command's effect is seen: a client that sends the command
again gets a different answer from the one it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

Hook = Callable[[], Awaitable[None]]


class ReplyDroppingProxy:
    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._database = target.path or "/0"
        self._server: asyncio.Server | None = None
        self._armed: tuple[tuple[bytes, ...], Hook] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.dropped = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"redis://{host}:{port}{self._database}"

    def drop_next_reply_to(self, *command_parts: bytes, then: Hook) -> None:
        """Lose the next non-empty reply to a command that contains all ``command_parts``; run ``then``
        before the client notices (its connection closes right after)."""
        self._armed = (command_parts, then)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReplyDroppingProxy]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(*self._target)
        self._writers |= {client_writer, redis_writer}
        last_command = bytearray()
        try:
            async with asyncio.TaskGroup() as pipes:
                pipes.create_task(self._upstream(client_reader, redis_writer, last_command))
                pipes.create_task(self._downstream(redis_reader, client_writer, last_command))
        except* (ConnectionError, _ReplyDropped):
            pass
        finally:
            for writer in (client_writer, redis_writer):
                self._writers.discard(writer)
                writer.close()

    async def _upstream(
        self, client: asyncio.StreamReader, redis: asyncio.StreamWriter, last_command: bytearray
    ) -> None:
        while chunk := await client.read(65536):
            last_command[:] = chunk  # redis-py sends a command at once and waits for its reply
            redis.write(chunk)
            await redis.drain()
        raise ConnectionError("the client left")

    async def _downstream(
        self, redis: asyncio.StreamReader, client: asyncio.StreamWriter, last_command: bytearray
    ) -> None:
        while chunk := await redis.read(65536):
            if (
                self._armed is not None
                and _contains_all(last_command, self._armed[0])
                and not _empty_reply(chunk)
            ):
                hook = self._armed[1]
                self._armed = None
                await hook()
                self.dropped.set()
                raise _ReplyDropped
            client.write(chunk)
            await client.drain()
        raise ConnectionError("Redis left")


class _ReplyDropped(Exception):
    pass


def _contains_all(command: bytearray, parts: tuple[bytes, ...]) -> bool:
    return all(part in command for part in parts)


def _empty_reply(chunk: bytes) -> bool:
    """A blocking read that timed out: a null array (RESP2) or null (RESP3)."""
    return chunk in (b"*-1\r\n", b"_\r\n")
