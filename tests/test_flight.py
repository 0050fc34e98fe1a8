"""Pictures in flight: the stream waits on pictures, whatever number of frames each took."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from openfrp.media.flight import KEPT, InFlight
from openfrp.media.streamer import MAX_IN_FLIGHT, Callbacks, Streamer
from openfrp.media.wire import CODEC_H264, CODEC_PALETTE


def test_a_picture_is_in_flight_until_its_last_frame_is_acknowledged() -> None:
    flight = InFlight()
    flight.sent(1, picture=1)
    flight.sent(2, picture=1)
    flight.sent(3, picture=2)
    assert len(flight) == 2
    flight.done(2)  # the H.264 frame drawn before the palette tiles it followed
    assert len(flight) == 2
    flight.done(1)
    assert len(flight) == 1
    flight.done(1)  # acknowledged twice, or a frame it never sent: no change
    flight.done(99)
    assert len(flight) == 1
    flight.clear()
    assert len(flight) == 0


def test_frames_never_acknowledged_are_not_kept_forever() -> None:
    flight = InFlight()
    for frame in range(KEPT + 10):
        flight.sent(frame, picture=frame)
    assert len(flight) == KEPT


class MixedScreen:
    """A 128x64 screen whose left tile is noise (H.264) and right tile one colour (palette
    tiles), both new at every grab: each picture travels as two frames."""

    width, height = 128, 64

    def __init__(self) -> None:
        self.grabs = 0
        self._random = np.random.default_rng(7)

    def grab(self) -> NDArray[np.uint8]:
        self.grabs += 1
        pixels = np.zeros((self.height, self.width, 4), np.uint8)
        pixels[:, :64] = self._random.integers(0, 256, (self.height, 64, 4), np.uint8)
        pixels[:, 64:] = self.grabs % 256
        return pixels

    def resize(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


def test_a_mixed_picture_takes_one_place_in_flight_not_two() -> None:
    """Counted by frames, a picture of palette tiles and H.264 filled the path alone, so the
    next capture waited for the terminal to draw it: motion lost frames in the browser."""
    screen = MixedScreen()
    offered: list[tuple[int, int]] = []  # (frame number, codec)

    async def run() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()

        def offer(cid: str, data: bytes) -> bool:
            number, _, _, codec = struct.unpack_from("!IHHB", data)
            offered.append((number, codec))
            return True

        callbacks = Callbacks(offer, lambda *_: None, lambda *_: None, lambda *_: None)
        streamer = Streamer(screen, callbacks, 30, loop, lambda w, h: (w, h))
        streamer.follow("c1", ["h264", "palette"], None)
        try:
            await _until(lambda: len(offered) >= 2 * MAX_IN_FLIGHT, 5.0)
            await asyncio.sleep(0.3)  # nothing acknowledged: no more pictures
            held = list(offered)
            for number, _ in held[:2]:  # the first picture, both its frames
                streamer.acked(number)
            await _until(lambda: len(offered) > len(held), 5.0)
            return held
        finally:
            streamer.stop()

    held = asyncio.run(run())
    assert [codec for _, codec in held] == [CODEC_PALETTE, CODEC_H264] * MAX_IN_FLIGHT


async def _until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
