"""One session's display stream: a worker thread that captures, finds changes, encodes.

The event loop only tells it where frames go (`follow`), what the terminal asked for
(`keyframe`, `resize`, `acked`) and gets frames back through `call_soon_threadsafe`. A
picture is captured only while fewer than MAX_IN_FLIGHT are unacknowledged (media/flight.py;
more on a path whose round trip is longer than two frames, up to MOST_IN_FLIGHT)
and the bitrate budget has room (media/rate.py; a tick that found the path full is taken by
the next acknowledgement, not the next tick: scrolling at 25 instead of 19 fps, latency p50
70 instead of 114 ms), and encoded only when the screen changed, a keyframe is due, the
still screen is due its high-quality refinement, or a keep-alive is due: a still screen
costs a 0.5 ms compare per tick and a few bytes a second. A tick that
finds a screen still which moved a tick ago looks again RECHECK later, once: a 30 fps video
beside 30 Hz ticks otherwise loses the pictures that land just after a tick (the browser drew
27.2 frames a second of ffplay's 29.5; with the second look, 29.1-29.2 of 30.0). Told of
every change by a damage watch (media/damage.py, `damage_live`), the worker instead rests on
a still screen until something is drawn, and then looks at once (paced from the last change
it saw): a keystroke's echo no longer waits for a tick. A frame the
path cannot take is dropped, never queued; an H.264 or palette frame dropped after encoding
breaks the chain, so the next one is a keyframe.

A terminal that draws both H.264 and palette frames gets the mixed stream (media/mixed.py):
changed tiles of few colours exactly, the others in H.264; a still screen's refinement then
redraws the tiles H.264 last drew, exactly where they have few colours.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import changed_tiles
from openfrp.media.encoder import Encoder, choose_codec, make_encoder
from openfrp.media.flight import InFlight
from openfrp.media.mixed import Frame, MixedCanvas
from openfrp.media.randr import RandrError
from openfrp.media.rate import RateControl
from openfrp.media.wire import (
    CODEC_H264,
    CODEC_NAMES,
    CODEC_PALETTE,
    FLAG_KEY,
    FLAG_REFINE,
    pack_frame,
)

MAX_IN_FLIGHT = 2  # pictures; each one or two frames
MOST_IN_FLIGHT = 5  # on a path with a long round trip (RateControl.window)
REFINE_AFTER = 0.5  # seconds of a still screen before its high-quality pass
REFINE_FRAMES = 8  # x264 acts on a raised bitrate a few frames late, then refines
REFINE_BOOST = 8
REST_BITRATE = 20_000  # after the refinement: keep-alives of a still screen stay tiny
RETARGET = 0.1  # the video encoder's bitrate follows the palette frames' share past this
KEEPALIVE = 1.0  # seconds between frames of a still screen (H.264: a few bytes)
RECHECK = 0.008  # a tick that finds a moving screen still looks again this soon, once
KEEPALIVE_STILL_IMAGE = 5.0  # JPEG / rgb-zlib repeat the whole picture
STATS_EVERY = 10.0
BITS_PER_PIXEL = 2.0  # the bitrate ceiling per pixel of the screen, per second


class Screen(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...

    def grab(self) -> NDArray[np.uint8]: ...
    def resize(self, width: int, height: int) -> tuple[int, int]: ...


def max_bitrate(width: int, height: int) -> int:
    return max(300_000, int(width * height * BITS_PER_PIXEL))


@dataclass
class Callbacks:
    """The session's side, all called on the event loop thread."""

    offer: Callable[[str, bytes], bool]  # queue a frame on a connection if its path is clear
    log: Callable[[str, str | None, dict[str, Any]], None]  # event, connection id, attrs
    result: Callable[[bool, str], None]  # capture/encode worked (after failing) or failed
    screen: Callable[[str, int, int], None]  # tell the terminal its screen's new size


@dataclass
class _Connection:
    cid: str
    codec: str
    started: float
    palette: bool = False  # H.264 mixed with palette frames
    frames: int = 0
    palette_frames: int = 0
    bytes: int = 0
    dropped: int = 0
    keyframes: int = 0
    refines: int = 0
    window_frames: int = 0
    window_bytes: int = 0
    window_start: float = field(default_factory=time.monotonic)


class Streamer:
    def __init__(
        self,
        display: Screen,
        callbacks: Callbacks,
        fps: int,
        loop: asyncio.AbstractEventLoop,
        fit: Callable[[int, int], tuple[int, int]],
        x264_params: str = "",
    ) -> None:
        self.display = display
        self._x264_params = x264_params
        self._cb = callbacks
        self._loop = loop
        self._fit = fit
        self._max_fps = fps
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._conn: _Connection | None = None
        self._key_reason: str | None = None
        self._resize: tuple[int, int] | None = None
        self._in_flight = InFlight()
        self._number = 0
        self._pictures = 0
        self._damaged = False  # drawn on since the last look (media/damage.py)
        self._damage_live = False  # a damage watch tells of every change: a still screen rests
        self.rate = RateControl(max_bitrate(display.width, display.height), fps)
        self._last_stats = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="openfrp-stream", daemon=True)
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------------------

    def follow(
        self, cid: str | None, decoders: list[str] | None, screen: tuple[int, int] | None
    ) -> None:
        """Stream to connection `cid` (None: to nobody); a new one starts with a keyframe."""
        with self._lock:
            if self._conn is not None and self._conn.cid == cid:
                return
            if self._conn is not None:
                self._stats(self._conn, final=True)
            self._conn = None
            if cid is None:
                return
            codec = choose_codec(decoders)
            palette = codec == "h264" and "palette" in (decoders or [])
            self._conn = _Connection(cid, codec, time.monotonic(), palette)
            self._in_flight.clear()
            self.rate.reset(_ms())
            self._key_reason = "connection"
            if screen is not None and self._fit(*screen) != (
                self.display.width,
                self.display.height,
            ):
                self._resize = screen
        attrs = {"codec": codec, "decoders": decoders or [], "palette": palette}
        self._cb.log("stream.codec", cid, attrs)
        self._wake.set()

    def unfollow(self, cid: str) -> None:
        """Connection `cid` closed: its final stats now, before the log says it closed."""
        with self._lock:
            if self._conn is not None and self._conn.cid == cid:
                self._stats(self._conn, final=True)
                self._conn = None

    def keyframe(self, reason: str) -> None:
        with self._lock:
            self._key_reason = self._key_reason or reason
        self._wake.set()

    def resize(self, width: int, height: int) -> None:
        with self._lock:
            self._resize = (width, height)
        self._wake.set()

    def acked(self, frame: int) -> None:
        with self._lock:
            self._in_flight.done(frame)
            self.rate.acked(frame, _ms())
        self._wake.set()

    def damaged(self) -> None:
        """Something was drawn on the display (from the damage watch's thread)."""
        with self._lock:
            self._damaged = True
        self._wake.set()

    def damage_live(self, live: bool) -> None:
        """Whether a damage watch tells of every change; until it does, the worker looks at
        every tick."""
        with self._lock:
            self._damage_live = live
        self._wake.set()

    def tick(self) -> None:
        """Log the connection's stats every STATS_EVERY seconds."""
        now = time.monotonic()
        if now - self._last_stats >= STATS_EVERY:
            self._last_stats = now
            with self._lock:
                if self._conn is not None:
                    self._stats(self._conn, final=False)

    def stop(self) -> None:
        self.follow(None, None, None)
        self._stopped = True
        self._wake.set()

    def _stats(self, conn: _Connection, final: bool) -> None:
        now = time.monotonic()
        span = max(1e-3, now - conn.window_start)
        attrs = {
            "codec": conn.codec,
            "width": self.display.width,
            "height": self.display.height,
            "fps": round(conn.window_frames / span, 1),
            "mbit_s": round(conn.window_bytes * 8 / span / 1e6, 3),
            "frames": conn.frames,
            "bytes": conn.bytes,
            "dropped": conn.dropped,
            "keyframes": conn.keyframes,
            "refines": conn.refines,
            "palette_frames": conn.palette_frames,
            "bitrate_target": self.rate.bitrate,
            "fps_target": self.rate.fps,
            "final": final,
        }
        if final:
            attrs["seconds"] = round(now - conn.started, 1)
        conn.window_frames = conn.window_bytes = 0
        conn.window_start = now
        self._cb.log("stats", conn.cid, attrs)

    def _deliver(self, conn: _Connection, number: int, data: bytes, flags: int) -> None:
        with self._lock:
            if self._conn is not conn:
                return
            if not self._cb.offer(conn.cid, data):
                self._in_flight.done(number)
                conn.dropped += 1
                if data[8] in (CODEC_H264, CODEC_PALETTE):
                    self._key_reason = self._key_reason or "dropped"
                return
            self.rate.sent(number, len(data), _ms(), data[8] == CODEC_PALETTE)
            conn.frames += 1
            conn.window_frames += 1
            conn.bytes += len(data)
            conn.window_bytes += len(data)
            conn.keyframes += bool(flags & FLAG_KEY)
            conn.refines += bool(flags & FLAG_REFINE)
            conn.palette_frames += data[8] == CODEC_PALETTE

    # -- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        encoder: Encoder | None = None
        canvas = MixedCanvas(np.ones((1, 1), np.bool_))
        previous: NDArray[np.uint8] | None = None
        changed_at = sent_at = time.monotonic()
        refined = 0
        failing = False
        next_tick = looked_at = time.monotonic()
        owed = False  # a tick found the path full: the next acknowledgement may take it
        rechecked = False
        h264_rate = self.rate.bitrate  # what the encoder was last given
        while not self._stopped:
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            with self._lock:
                conn, resize = self._conn, self._resize
                urgent = resize is not None or self._key_reason is not None
                full = len(self._in_flight) >= self.rate.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT)
                pace = 1 / max(1, self.rate.fps)
                damage_live = self._damage_live
                if self._damaged:  # drawn on: look again, paced from the last change seen (a
                    # look that found none does not count, else a 30 fps video drawn just after
                    # one waits a whole tick), and RECHECK after the last look
                    next_tick = min(next_tick, max(changed_at + pace, looked_at + RECHECK))
                elif not damage_live:  # no watch (any more): the tick's pace
                    next_tick = min(next_tick, looked_at + pace)
                if time.monotonic() < next_tick and not urgent and (full or not owed):
                    continue  # woken by an acknowledgement: keep the pace
                self._damaged = False
                next_tick = looked_at = time.monotonic()
                next_tick += pace
                self._resize = None
                blocked = owed = full
                if conn is not None and blocked:
                    conn.dropped += 1
                # The budget paces H.264 (its quality floor can outgrow the bitrate); JPEG and
                # rgb-zlib frames are paced by the acknowledgements alone.
                budget = conn is None or conn.codec != "h264" or self.rate.allow(_ms())
                blocked = blocked or not (urgent or budget)
                # With nobody connected the path is unknown: nothing to learn from.
                stepped = conn is not None and self.rate.update(_ms())
                video_rate = self.rate.video_bitrate(_ms())
                moved = abs(video_rate - h264_rate) > RETARGET * h264_rate
                if encoder is not None and (stepped or (moved and not refined)):
                    encoder.set_bitrate(video_rate)
                    h264_rate = video_rate
            if conn is None or self._stopped:
                continue
            try:
                if resize is not None:
                    self._apply_resize(conn, *resize)
                if blocked:
                    continue
                pixels = self.display.grab()
                height, width = pixels.shape[:2]
                if (
                    encoder is None
                    or CODEC_NAMES[encoder.codec] != conn.codec
                    or (
                        encoder.width,
                        encoder.height,
                    )
                    != (width, height)
                ):
                    self._new_size_limits(width, height)
                    h264_rate = self.rate.bitrate
                    encoder = make_encoder(
                        conn.codec,
                        width,
                        height,
                        h264_rate,
                        self._max_fps,
                        self._x264_params,
                    )
                    self.keyframe("new encoder")
                    canvas = MixedCanvas(changed_tiles(None, pixels))
                now = time.monotonic()
                mask = changed_tiles(previous, pixels)
                if mask.any():
                    if refined:  # refining or resting: back to the stream's rate
                        encoder.set_bitrate(video_rate)
                        h264_rate = video_rate
                    changed_at, refined, rechecked = now, 0, False
                elif not rechecked and not damage_live and now - changed_at < 1.5 * pace:
                    # Moving a tick ago, still now: the source's next picture is due any moment.
                    next_tick, rechecked = min(next_tick, now + RECHECK), True
                with self._lock:
                    key_reason, self._key_reason = self._key_reason, None
                still = now - changed_at
                refine = encoder.codec == CODEC_H264 and still >= REFINE_AFTER
                refine = refine and refined < REFINE_FRAMES
                if refine and conn.palette and not canvas.lossy.any():
                    refine, refined = False, REFINE_FRAMES  # every tile already exact
                keepalive = KEEPALIVE if encoder.codec == CODEC_H264 else KEEPALIVE_STILL_IMAGE
                due = key_reason or changed_at > sent_at or refine or now - sent_at >= keepalive
                if not due:
                    if damage_live:  # rest until drawn on, or the refinement or keep-alive
                        rest = sent_at + keepalive
                        if encoder.codec == CODEC_H264 and refined < REFINE_FRAMES:
                            rest = min(rest, changed_at + REFINE_AFTER)
                        next_tick = max(next_tick, rest)
                    continue
                if refine and refined == 0:
                    encoder.set_bitrate(self.rate.bitrate * REFINE_BOOST)
                refined += refine
                frames: Iterable[Frame]
                if conn.palette:
                    frames = canvas.encode(encoder, pixels, mask, key_reason is not None, refine)
                else:
                    payload, key = encoder.encode(pixels, key_reason is not None)
                    frames = [Frame(encoder.codec, payload, FLAG_KEY if key else 0)]
                self._pictures += 1
                for frame in frames:  # each on its way as soon as it is encoded
                    if failing:
                        failing = False
                        self._post(self._cb.result, True, "")
                    self._send(conn, frame, width, height, refine)
                if conn.palette and refine and not canvas.lossy.any():
                    refined = REFINE_FRAMES  # exact at once: no more passes
                if refine and refined == REFINE_FRAMES:
                    encoder.set_bitrate(REST_BITRATE)
            except Exception as exc:
                encoder = None
                previous = None
                failing = True
                error = f"{type(exc).__name__}: {exc}"
                self._post(self._cb.result, False, error)
                time.sleep(0.2)
                continue
            previous, sent_at = pixels, now

    def _send(self, conn: _Connection, frame: Frame, width: int, height: int, refine: bool) -> None:
        flags = frame.flags | (FLAG_REFINE if refine else 0)
        self._number += 1
        data = pack_frame(self._number, width, height, frame.codec, flags, frame.payload)
        with self._lock:
            self._in_flight.sent(self._number, self._pictures)
        self._post(self._deliver, conn, self._number, data, flags)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Hand a result to the event loop; once the loop is closed (the server is gone)
        the worker stops instead of dying with a traceback."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            self._stopped = True

    def _new_size_limits(self, width: int, height: int) -> None:
        with self._lock:  # the bitrate scales with the screen, where the path allowed it
            new = max_bitrate(width, height)
            scaled = self.rate.bitrate * new // self.rate.max_bitrate
            self.rate.max_bitrate, self.rate.bitrate = new, max(self.rate.min_bitrate, scaled)

    def _apply_resize(self, conn: _Connection, width: int, height: int) -> None:
        """Resize the display; a refused size keeps the old one (logged), the session goes on."""
        before = (self.display.width, self.display.height)
        wanted = self._fit(width, height)
        attrs: dict[str, Any] = {"asked": [width, height], "was": list(before)}
        if wanted != before:
            try:
                self.display.resize(*wanted)
            except (RandrError, OSError, subprocess.SubprocessError) as exc:
                attrs["error"] = f"{type(exc).__name__}: {exc}"
                self._post(self._cb.log, "display.resize_failed", conn.cid, attrs)
            else:
                self.keyframe("resize")
        size = self.display.width, self.display.height
        self._post(self._cb.screen, conn.cid, *size)
        if size != before:
            attrs.update(width=size[0], height=size[1])
            self._post(self._cb.log, "display.resized", conn.cid, attrs)


def _ms() -> int:
    return time.monotonic_ns() // 1_000_000
