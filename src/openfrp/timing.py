"""The one clock the I/O layers give the state machines, and the alarm that wakes them.

Deadlines are monotonic milliseconds, the same clock as the event loop's, so a deadline can
be handed to `loop.call_at` as it is. The alarm posts a ("tick",) item into the control
loop's own inbox: no task per wait, one timer handle per session.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Alarm:
    def __init__(self, inbox: asyncio.Queue[tuple[Any, ...]]) -> None:
        self._inbox = inbox
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None

    def arm(self, deadline_ms: int | None) -> None:
        """Wake the loop by `deadline_ms` (None: never).

        A deadline that moved later (the receive timer, on every message) keeps the earlier
        wake-up: the loop ticks once for nothing and re-arms, instead of replacing a timer
        handle per message.
        """
        if deadline_ms is not None and self._armed is not None and self._armed <= deadline_ms:
            return
        if deadline_ms is None and self._armed is None:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed = deadline_ms
        if deadline_ms is not None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_at(deadline_ms / 1000, self._inbox.put_nowait, ("tick",))

    def fired(self) -> None:
        self._handle = None
        self._armed = None
