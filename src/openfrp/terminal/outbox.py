"""What the Python terminal sends, waiting for its transport: at most `limit` bytes.

The limit is the session's send_buffer_limit, the bound the server keeps for its own side
(server/links.py). A server that has not taken that much is stuck, not slow, so the terminal
does what the server does with a terminal that stops reading: it gives the connection up (it
counts as lost, and the terminal reconnects and resumes, as after a dropped network). The
control loop's own messages (acks, pongs, events) never wait: `put` says when one does not
fit. A command's input may be a burst (`type` with a long text) that must not pass for a
stuck server: it waits for `room`, and uses half the bound at most, so the other half stays
for the control loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Outbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.queued = 0  # bytes queued or being written (encoded JSON is ASCII: a char a byte)
        self._queue: asyncio.Queue[str] = asyncio.Queue()  # bounded by `limit`, in bytes
        self._room = asyncio.Event()
        self._room.set()

    def put(self, text: str) -> bool:
        """Queue `text`; False, and nothing queued, when it would pass the limit."""
        if self.queued + len(text) > self.limit:
            return False
        self.queued += len(text)
        self._queue.put_nowait(text)
        if self.queued > self.limit // 2:
            self._room.clear()
        return True

    async def room(self, timeout: float) -> bool:
        """Whether at most half the limit is queued within `timeout` seconds (or the outbox
        was closed: its sender finds the connection gone)."""
        if self._room.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._room.wait()
        except TimeoutError:
            return False
        return True

    async def drain(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send what is queued, in order, until `send` fails."""
        while True:
            text = await self._queue.get()
            await send(text)
            self.queued -= len(text)
            if self.queued <= self.limit // 2:
                self._room.set()

    def close(self) -> None:
        self._room.set()
