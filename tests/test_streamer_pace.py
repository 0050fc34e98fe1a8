"""The stream's capture pace, with a real Streamer thread over a screen made up in memory."""

from __future__ import annotations

import asyncio
import struct
import threading
import time

import numpy as np
from numpy.typing import NDArray

from openfrp.media.streamer import RECHECK, Callbacks, Streamer

FPS = 30


class MovingScreen:
    """A 64x64 screen that changes at every grab while `moving` is set, and notes when it
    was grabbed."""

    width = height = 64

    def __init__(self) -> None:
        self.moving = threading.Event()
        self.grabs: list[tuple[float, bool]] = []  # (time, moving)
        self._count = 0

    def grab(self) -> NDArray[np.uint8]:
        moving = self.moving.is_set()
        self._count += moving
        self.grabs.append((time.monotonic(), moving))
        return np.full((self.height, self.width, 4), self._count % 256, np.uint8)

    def resize(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


def test_a_screen_that_stops_moving_is_looked_at_again_soon_once() -> None:
    """A tick that finds a moving screen still (a video between two of its pictures) looks
    again after RECHECK instead of a whole tick, once; a still screen keeps the tick's pace.
    Without it, capture at 30 Hz beside a 30 fps video misses the pictures that land just
    after a tick."""
    screen = MovingScreen()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        streamer: Streamer

        def offer(cid: str, data: bytes) -> bool:
            (number,) = struct.unpack_from("!I", data)
            loop.call_soon(streamer.acked, number)
            return True

        callbacks = Callbacks(
            offer=offer,
            log=lambda *_: None,
            result=lambda *_: None,
            screen=lambda *_: None,
        )
        streamer = Streamer(screen, callbacks, FPS, loop, lambda w, h: (w, h))
        streamer.follow("c1", ["rgb-zlib"], None)
        try:
            for _ in range(5):
                screen.moving.set()
                await asyncio.sleep(0.3)
                screen.moving.clear()
                await asyncio.sleep(0.3)
        finally:
            streamer.stop()

    asyncio.run(run())
    gaps = []  # after each first still grab: the gap to the next grab, and the one after
    for k in range(1, len(screen.grabs) - 2):
        (_, before), (at, now), (later, _), (last, _) = screen.grabs[k - 1 : k + 3]
        if before and not now:
            gaps.append((later - at, last - later))
    assert len(gaps) >= 4
    quick = [first for first, _ in gaps if first < RECHECK + 0.015]
    assert len(quick) >= len(gaps) - 1, gaps
    assert all(second > 0.9 / FPS for _, second in gaps), gaps  # once, then the tick's pace
