"""The session's display as a WebRTC video track (FRP8); aiortc encodes it (VP8 or H.264).

aiortc asks for a frame whenever it is ready to encode one; this track answers only when the
screen changed, plus the same picture again every `repeat` seconds (a viewer that lost a
packet or has just joined gets a whole picture), so a still screen costs almost nothing. The
grab and the comparison run in a worker thread: the event loop only waits. Each failed grab,
and the first good one after them, is reported (`on_grab`), which is how a display that keeps
failing ends the connection with 4011 as it does over FRP7.

aiortc's rate control is REMB from the receiver: it sets the encoder's target bitrate, which
the codec module clamps (VP8 250 kbit/s to 1.5 Mbit/s, H.264 0.5 to 3 Mbit/s in aiortc 1.16).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame
from numpy.typing import NDArray

CLOCK = 90000  # the RTP video clock
TIME_BASE = Fraction(1, CLOCK)
MAX_FPS = 30.0
REPEAT_S = 1.0
RETRY_S = 0.5  # after a failed grab (the display is being replaced, say)


class Grabbable(Protocol):
    def grab(self) -> NDArray[np.uint8]: ...


OnGrab = Callable[[bool, str], None]  # (ok, error)


class DisplayTrack(VideoStreamTrack):
    """Frames of whatever display `display()` returns now (it may be replaced, or not ready)."""

    def __init__(
        self,
        display: Callable[[], Grabbable | None],
        max_fps: float = MAX_FPS,
        repeat: float = REPEAT_S,
        on_grab: OnGrab | None = None,
    ) -> None:
        super().__init__()
        self._display = display
        self._on_grab = on_grab
        self._failing = False
        self._period = 1 / max_fps
        self._repeat = repeat
        self._last: NDArray[np.uint8] | None = None
        self._sent_at = 0.0
        self._due = 0.0
        self._start = time.monotonic()
        self.frames = 0
        self.grabs = 0

    async def recv(self) -> Any:
        """The next picture worth encoding: changed, or due for its repeat."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await asyncio.sleep(max(0.0, self._due - time.monotonic()))
            self._due = max(self._due + self._period, time.monotonic())
            display = self._display()
            if display is None:
                continue
            try:
                pixels = await asyncio.to_thread(self._changed, display)
            except Exception as exc:
                self._due = time.monotonic() + RETRY_S
                self._failing = True
                self._report(False, f"{type(exc).__name__}: {exc}")
                continue
            if self._failing:
                self._failing = False
                self._report(True, "")
            if pixels is not None:
                return self._frame(pixels)

    def _report(self, ok: bool, error: str) -> None:
        if self._on_grab is not None:
            self._on_grab(ok, error)

    def _changed(self, display: Grabbable) -> NDArray[np.uint8] | None:
        """The screen if it differs from the last picture sent or the repeat is due."""
        pixels = display.grab()
        self.grabs += 1
        now = time.monotonic()
        last = self._last
        if last is not None and now - self._sent_at < self._repeat and np.array_equal(last, pixels):
            return None
        self._last, self._sent_at = pixels, now
        return pixels

    def _frame(self, pixels: NDArray[np.uint8]) -> VideoFrame:
        frame = VideoFrame.from_ndarray(pixels, format="bgra")  # BGRX: the X byte is ignored
        frame.pts = int((time.monotonic() - self._start) * CLOCK)
        frame.time_base = TIME_BASE
        self.frames += 1
        return frame
