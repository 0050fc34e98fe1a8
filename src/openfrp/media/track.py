"""The session's display as a WebRTC video track (FRP8); aiortc encodes it (VP8 or H.264).

aiortc asks for a frame whenever it is ready to encode one; this track answers only when the
screen changed, so a still screen costs almost nothing. A screen still for SHARPEN_S goes once
more, and the codec spends the pause on detail (text blurred by scrolling comes out sharp);
beside palette tiles, again while a pass turns some of the video's tiles into palette ones. A
receiver without a frame for three seconds asks for a keyframe, so a still screen is repeated
every `repeat` seconds: in VP8 as a frame of a few dozen bytes that shows the last one again
(media/vp8_repeat.py), else as the picture encoded again. A keyframe request (a viewer lost
what it could not recover) sends the picture itself. Told of every change by a damage watch
(media/damage.py), the track rests on a still screen until something is drawn. The grab and
the comparison run in a worker thread: the event loop only waits. Each failed grab, and the
first good one after them, is reported (`on_grab`), which is how a display that keeps
failing ends the connection with 4011 as it does over FRP7.

aiortc's rate control is REMB from the receiver: it sets the encoder's target bitrate, which
the codec module clamps (VP8 250 kbit/s to 1.5 Mbit/s, H.264 0.5 to 3 Mbit/s in aiortc 1.16).
A codec at its quality ceiling sends more than that target (text in VP8), so the track also
spends a budget (media/track_budget.py) from what its sender reports: the bytes it sent, and
the receiver's loss and round trip. Frames bigger than the budget allows make fewer frames.

Once a terminal's hello on the control channel says it draws palette tiles beside the track
("track-tiles" among its decoders, as both terminals say over FRP8), the text goes beside the
track as exact tiles on that channel (media/track_tiles.py), and
the track carries only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.packet import Packet
from av.video.frame import VideoFrame
from numpy.typing import NDArray

from openfrp.media.streamer import RECHECK, max_bitrate
from openfrp.media.track_budget import TrackBudget
from openfrp.media.track_tiles import Regions, Split, TrackTiles, regions_frame
from openfrp.media.vp8_repeat import repeat_frame
from openfrp.media.wire import TRACK_TILES

CLOCK = 90000  # the RTP video clock
TIME_BASE = Fraction(1, CLOCK)
MAX_FPS = 30.0
REPEAT_S = 1.0
SHARPEN_S = 0.5
RETRY_S = 0.5  # after a failed grab (the display is being replaced, say)
BUDGET_EVENT_MS = 10_000
UNSENT = 64  # CODEC_TRACK frames kept while the RTP origin is not known yet


class Grabbable(Protocol):
    def grab(self) -> NDArray[np.uint8]: ...


class Channel(Protocol):
    """What the track uses of aiortc's RTCDataChannel."""

    @property
    def bufferedAmount(self) -> int: ...
    @property
    def readyState(self) -> str: ...

    def send(self, data: bytes) -> None: ...
    def on(self, event: str, f: Callable[..., None]) -> Any: ...


class Sender(Protocol):
    """What the budget reads of aiortc's RTCRtpSender."""

    async def getStats(self) -> Any: ...


OnGrab = Callable[[bool, str], None]  # (ok, error)
OnBudget = Callable[[dict[str, Any]], None]  # the budget's new bitrate, and why


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
        self._sharp = False
        self._keyframe = False
        self._vp8 = False
        self._looked = 0.0
        self._drawn = asyncio.Event()
        self._damage_live = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._start = time.monotonic()
        self.frames = 0
        self.grabs = 0
        self.budget: TrackBudget | None = None
        self._sender: Sender | None = None
        self._on_budget: OnBudget | None = None
        self._told_at = 0
        self._report_at: object = None
        self._channel: Channel | None = None
        self._tiles: TrackTiles | None = None
        self._rtp_sender: Any = None
        self._origin: int | None = None  # the RTP timestamp of pts 0 (aiortc's random one)
        self._pts = 0  # of the frame returned last
        self._video_at = 0.0  # when it was returned
        # (pts, width, height, regions) of CODEC_TRACK frames waiting for the origin
        self._unsent: list[tuple[int, int, int, Regions]] = []

    def spend(self, sender: Sender, on_budget: OnBudget | None = None) -> None:
        """Hold the frames to a budget, read from `sender`'s statistics; `on_budget` hears
        of each change."""
        self._sender, self._on_budget = sender, on_budget

    def listen(self, sender: Any) -> None:
        """Hear `sender`'s keyframe requests (aiortc's RTCRtpSender reads them from RTCP)."""
        requested = sender._send_keyframe

        def keyframe() -> None:
            requested()
            self._keyframe = True
            self._drawn.set()  # a resting track answers at once

        sender._send_keyframe = keyframe
        self._rtp_sender = sender

    def attach(self, channel: Channel) -> None:
        """The control channel: palette tiles go on it once the page's hello asks for them."""
        self._channel = channel

    def heard_hello(self, decoders: list[str]) -> None:
        """The page's hello (parsed by the session): tiles from now on if it draws them."""
        if TRACK_TILES in decoders:
            self._tiles = TrackTiles()
        self._drawn.set()

    def heard_ack(self, frame: int) -> None:
        """The page drew palette frame `frame`."""
        if self._tiles is not None:
            self._tiles.acked(frame)
            self._drawn.set()

    def heard_keyframe_ask(self) -> None:
        """The page could not draw a palette frame: the tiles start over."""
        if self._tiles is not None:
            self._tiles.ask()
            self._drawn.set()

    def encoded_as(self, codec: str | None) -> None:
        """The codec the peers agreed on ("vp8", "h264"): VP8 repeats cost a few bytes."""
        self._vp8 = codec == "vp8"

    async def recv(self) -> Any:
        """The next picture worth encoding (changed, sharpened, asked for), or a repeat."""
        self._loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._drawn.is_set():  # drawn on: look at once, paced from the last frame
                self._drawn.clear()
                since = max(self._sent_at + self._period, self._looked + RECHECK)
                self._due = min(self._due, since)
            wait = self._due - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drawn.wait(), wait)
                continue
            self._looked = time.monotonic()
            self._due = max(self._due + self._period, self._looked)
            self._learn_origin()
            wait_ms = await self._over_budget()
            channel = self._channel
            if (
                self._tiles is not None
                and channel is not None
                and (channel.readyState != "open" or self._tiles.busy(channel.bufferedAmount))
            ):
                continue  # the page is behind: no picture until it catches up
            if wait_ms:
                self._due = time.monotonic() + wait_ms / 1000
                continue
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
            if isinstance(pixels, bytes):
                return self._packet(pixels)
            if isinstance(pixels, Split):
                frame = self._send_split(pixels)
                if frame is not None:
                    return frame
                if pixels.frames:
                    continue
                pixels = None
            if pixels is not None:
                return self._frame(pixels)
            if self._damage_live:  # still: rest until drawn on, or the sharpening or repeat
                rest = self._video_at + self._repeat if self._sharp else self._sent_at + SHARPEN_S
                self._due = max(self._due, rest)

    def damaged(self) -> None:
        """Something was drawn on the display (from the damage watch's thread)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed: the track is done
                self._loop.call_soon_threadsafe(self._drawn.set)

    def damage_live(self, live: bool) -> None:
        """Whether a damage watch tells of every change; until it does, the track looks at
        the screen MAX_FPS times a second."""
        self._damage_live = live
        self.damaged()

    async def _over_budget(self) -> int:
        """How long the budget holds the next frame back (0: not at all)."""
        if self._sender is None or self.budget is None:
            return 0
        now = int((time.monotonic() - self._start) * 1000)
        for stats in (await self._sender.getStats()).values():
            if stats.type == "outbound-rtp":
                self.budget.sent(stats.bytesSent, now)
            elif stats.type == "remote-inbound-rtp" and stats.timestamp != self._report_at:
                self._report_at = stats.timestamp
                rtt = None if stats.roundTripTime is None else int(stats.roundTripTime * 1000)
                expected = stats.packetsReceived + stats.packetsLost
                if self.budget.report(expected, stats.packetsLost, rtt, now):
                    self._tell_budget(self.budget.loss, rtt, now)
        return self.budget.wait_ms(now)

    def _tell_budget(self, lost: float, rtt: int | None, now: int) -> None:
        """A changed budget, told at most once per BUDGET_EVENT_MS (it moves twice a second
        on a congested path)."""
        if self._on_budget is None or self.budget is None or now < self._told_at:
            return
        self._told_at = now + BUDGET_EVENT_MS
        attrs = {"bitrate": self.budget.bitrate, "lost": round(lost, 3), "rtt_ms": rtt}
        self._on_budget(attrs)

    def _send_split(self, split: Split) -> VideoFrame | Packet[Any] | None:
        """Send a split picture's palette frames; its track frame, if it has one, else a
        repeat when one is due (scrolling text alone sends no track frame, and a receiver
        without one for three seconds asks for a keyframe)."""
        for data in split.frames:
            self._send(data)
        if split.video is None:
            video = None if self._tiles is None else self._tiles.video()
            if video is None or time.monotonic() - self._video_at < self._repeat:
                return None
            if self._vp8:
                return self._packet(repeat_frame(video.shape[1], video.shape[0]))
            return self._frame(video)
        frame = self._frame(split.video)
        if split.regions:
            height, width = split.video.shape[:2]
            self._unsent.append((self._pts, width, height, split.regions))
            del self._unsent[:-UNSENT]
            self._send_regions()
        return frame

    def _learn_origin(self) -> None:
        """aiortc adds a random origin to each frame's pts for its RTP timestamp; once the
        last frame went out (aiortc asks for the next one after sending it), its timestamp
        tells it."""
        if self._origin is None and self.frames:
            sent = getattr(self._rtp_sender, "_RTCRtpSender__rtp_timestamp", 0)
            if sent:
                self._origin = (sent - self._pts) & 0xFFFFFFFF
        self._send_regions()

    def _send_regions(self) -> None:
        """The CODEC_TRACK frames waiting for the origin, with their RTP timestamps."""
        if self._origin is None:
            return
        for pts, width, height, regions in self._unsent:
            self._send(regions_frame((self._origin + pts) & 0xFFFFFFFF, width, height, regions))
        self._unsent.clear()

    def _send(self, data: bytes) -> None:
        """On the channel while it is open (a closed one ends the connection anyway)."""
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(data)

    def _report(self, ok: bool, error: str) -> None:
        if self._on_grab is not None:
            self._on_grab(ok, error)

    def _changed(self, display: Grabbable) -> NDArray[np.uint8] | bytes | Split | None:
        """The screen if it changed, is to be sharpened or a keyframe is asked for (split
        when the page draws palette tiles); a VP8 repeat frame if a repeat is due; None:
        nothing to send."""
        pixels = display.grab()
        self.grabs += 1
        if self._tiles is not None:
            return self._split(self._tiles, pixels)
        now = time.monotonic()
        last = self._last
        if last is None or not np.array_equal(last, pixels):
            self._last, self._sent_at, self._sharp, self._keyframe = pixels, now, False, False
            return pixels
        if self._keyframe or (not self._sharp and now - self._sent_at >= SHARPEN_S):
            self._sent_at, self._sharp, self._keyframe = now, True, False
            return pixels
        if now - self._sent_at < self._repeat:
            return None
        self._sent_at = now
        return repeat_frame(pixels.shape[1], pixels.shape[0]) if self._vp8 else pixels

    def _split(self, tiles: TrackTiles, pixels: NDArray[np.uint8]) -> Split:
        """As _changed, with the text as palette tiles: the track sends the rest, and
        sharpens only tiles that went as video."""
        now = time.monotonic()
        changed = tiles.changed(pixels)
        keyframe = self._keyframe or not self.frames
        if changed is not None:
            self._sent_at, self._sharp, self._keyframe = now, False, False
            return tiles.split(pixels, changed, False, keyframe)
        if keyframe or (not self._sharp and now - self._sent_at >= SHARPEN_S):
            lossy = tiles.lossy
            sharpened = tiles.sharpen(pixels, keyframe)
            # Antialiased text takes a palette frame per group of tiles, a few a pass: a pass
            # that made some exact and left others goes again.
            self._sent_at, self._sharp, self._keyframe = now, not 0 < tiles.lossy < lossy, False
            return sharpened
        return Split([], None, [])  # a repeat, if one is due

    def _packet(self, data: bytes) -> Packet[Any]:
        packet = Packet(data)
        self._video_at = time.monotonic()
        packet.pts = self._pts = int((self._video_at - self._start) * CLOCK)
        packet.time_base = TIME_BASE
        self.frames += 1
        return packet

    def _frame(self, pixels: NDArray[np.uint8]) -> VideoFrame:
        ceiling = max_bitrate(pixels.shape[1], pixels.shape[0])
        if self.budget is None:
            self.budget = TrackBudget(ceiling)
        elif self.budget.max_bitrate != ceiling:
            self.budget.ceiling(ceiling)
        # BGRX, the X byte ignored; no copy (4 ms of the event loop's time a 720p frame while
        # the machine is busy): aiortc encodes this frame before it asks for the next one,
        # and the picture is not changed before that
        frame = VideoFrame.from_numpy_buffer(pixels, format="bgra")
        self._video_at = time.monotonic()
        frame.pts = self._pts = int((self._video_at - self._start) * CLOCK)
        frame.time_base = TIME_BASE
        self.frames += 1
        return frame
