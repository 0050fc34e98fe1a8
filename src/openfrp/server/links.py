"""A transport connection as the runtime sees it: a queue drained by a writer task.

The control loop only enqueues; a slow or stuck peer blocks its own writer, never the
session. Video goes through a path that drops frames while too many are unacknowledged; a
frame may wait behind a few control messages (a ping, a stats line), never behind more than
two frames. A frame dropped here costs the stream a keyframe, so the bound leaves room for
what the streamer sends: it captures while fewer than two pictures are unacknowledged, and a
picture may be two frames (palette tiles, then H.264 tiles). Every byte waiting to be
written counts toward `limit` (send_buffer_limit): past it the link stops queueing and
reports the overflow (4003), so a peer that sends pings and never reads cannot make the
server hold its pongs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from openfrp.media.streamer import MOST_IN_FLIGHT

MAX_FRAMES_IN_FLIGHT = 2 * MOST_IN_FLIGHT  # a picture may be two frames
ABORT_GRACE = 2.0  # seconds a peer that does not read gets to take its close frame


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class Link:
    def __init__(
        self,
        connection_id: str,
        transport: Transport,
        on_send_failed: Callable[[str, str], Awaitable[None]],
        limit: int = 4 * 1024 * 1024,
        on_overflow: Callable[[str, int], None] | None = None,
    ) -> None:
        self.connection_id = connection_id
        self._transport = transport
        self._on_send_failed = on_send_failed
        self._limit = limit
        self._on_overflow = on_overflow
        self.queued_bytes = 0  # queued or being written
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._failure: str | None = None
        self.frames_in_flight = 0
        self._writer = asyncio.create_task(self._write(), name=f"writer-{connection_id}")

    def send(self, text: str) -> None:
        if not self._closing:
            self._put(text)

    def _put(self, item: str | bytes) -> None:
        self.queued_bytes += len(item)
        if self.queued_bytes > self._limit:
            self._closing = True  # nothing more is queued; the runtime closes the link
            if self._on_overflow is not None:
                self._on_overflow(self.connection_id, self.queued_bytes)
            return
        self._queue.put_nowait(item)

    @property
    def wants_frames(self) -> bool:
        """False when the display reaches this terminal another way (an FRP8 video track)."""
        return self.track is None

    @property
    def track(self) -> Any:
        """The FRP8 video track that carries the display to this terminal, if any."""
        return getattr(self._transport, "track", None)

    def offer_frame(self, data: bytes) -> bool:
        """Queue a video frame unless too many are unacknowledged; otherwise drop it (False)."""
        if not self.wants_frames:
            return False
        if self.frames_in_flight < MAX_FRAMES_IN_FLIGHT and not self._closing:
            self.frames_in_flight += 1
            self._put(data)
            return True
        return False

    def frame_acked(self) -> None:
        self.frames_in_flight = max(0, self.frames_in_flight - 1)

    def close(self, code: int, reason: str, abort: bool = False) -> asyncio.Task[None]:
        """Drop what is queued and close; nothing waits on the peer (it may be stuck).
        A close frame that cannot go out in time (the peer does not read) is given up and the
        socket aborted, with whatever its buffers hold; `abort`: the peer is known not to
        read, so it gets less time."""
        self._closing = True
        self._writer.cancel()
        return asyncio.create_task(self._close(code, reason, abort))

    async def _close(self, code: int, reason: str, abort: bool) -> None:
        drop = getattr(self._transport, "abort", None)
        answered = getattr(self._transport, "wait_closed", None)
        try:
            async with asyncio.timeout(ABORT_GRACE if abort else 5.0):
                await self._transport.close(code, reason)
                if abort and answered is not None:
                    # A peer that reads answers the close frame at once; one that does not
                    # would hold the socket for the closing handshake's own timeout (10 s).
                    await answered()
        except TimeoutError:  # its writes are blocked, or it never answers: drop the socket
            if drop is not None:
                drop()
        except Exception:
            return

    async def failed_send(self, wait: float = 1.0) -> str | None:
        """Why the send in progress failed, once the connection was lost under it (its error
        follows the loss within one turn of the loop); None when no send was in progress."""
        if self._failure is None and not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), wait)
        return self._failure

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            self._idle.clear()
            try:
                if isinstance(item, str):
                    await self._transport.send_text(item)
                else:
                    await self._transport.send_bytes(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failure = f"{type(exc).__name__}: {str(exc) or 'lost during a send'}"
                if not self._closing:
                    await self._on_send_failed(self.connection_id, self._failure)
                return
            finally:
                self.queued_bytes -= len(item)
                self._idle.set()
