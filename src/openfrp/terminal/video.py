"""The Python terminal's picture: the stream decoded off the event loop, kept, measured, saved.

The loop only hands frames to a bounded queue; one worker thread decodes them (PyAV for H.264,
VP8 and JPEG, zlib for raw RGB, media/palette.py for the palette tiles drawn over the picture)
and keeps the latest picture, which is what a screenshot saves. Over FRP8 the picture is the
video track with the channel's palette tiles over it (terminal/track_picture.py), put
together only when a screenshot asks for it.
A delta frame that cannot follow the one before it (a gap in the frame numbers, a frame
dropped because the worker was behind, a decoder error) makes the worker skip to the next
keyframe and ask the server for one, so the person never sees a smeared picture.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import VideoFrame

from openfrp.media.mixed import split_regions
from openfrp.media.palette import decode_palette
from openfrp.media.rows import RowStore
from openfrp.media.wire import (
    CODEC_H264,
    CODEC_JPEG,
    CODEC_NAMES,
    CODEC_PALETTE,
    CODEC_RGB_ZLIB,
    CODEC_TRACK,
    CODEC_VP8,
    FLAG_MORE,
    FLAG_TILES,
    HEADER,
    FrameHeader,
    parse_frame,
)
from openfrp.terminal.track_picture import TrackPicture

DECODERS = ["h264", "palette", "vp8", "jpeg", "rgb-zlib"]  # what this terminal draws, best first
QUEUE_FRAMES = 8
KEYFRAME_RETRY_S = 1.0
_AV_CODECS = {CODEC_H264: "h264", CODEC_VP8: "vp8", CODEC_JPEG: "mjpeg"}
_INTRA = {CODEC_JPEG, CODEC_RGB_ZLIB}  # every frame stands alone

# report(kind, *args) is called from the worker thread: ("shown", number) and
# ("skipped", number) for each wire frame (both are acknowledged), ("keyframe", reason).
Report = Callable[..., None]


@dataclass(frozen=True)
class Stats:
    """The stream over one period, as the person experienced it."""

    fps: float
    mbit_s: float
    frames: int
    dropped: int
    codec: str | None
    width: int
    height: int
    track_frames: int  # of `frames`, those a WebRTC video track brought

    def attrs(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "mbit_s": self.mbit_s,
            "frames": self.frames,
            "frames_dropped": self.dropped,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "track_frames": self.track_frames,
        }


class VideoReceiver:
    """Decodes wire frames and WebRTC track frames in one worker thread."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(QUEUE_FRAMES)
        self._lock = threading.Lock()
        self._latest: VideoFrame | TrackPicture | None = None
        self._generation = 0  # a new connection: numbering and decoder state start over
        self._over_track = False  # the connection's picture is a video track (FRP8)
        self._behind = False  # the loop dropped a frame because the queue was full
        # worker state
        self._seen_generation = 0
        self._decoders: dict[int, Any] = {}
        self._canvas: np.ndarray[Any, np.dtype[np.uint8]] | None = (
            None  # what palette tiles draw on
        )
        self._rows = RowStore()  # rows palette frames drew lately (media/rows.py)
        self._track: TrackPicture | None = None  # over FRP8: the track under the tiles
        self._track_lock = threading.Lock()  # the worker changes it while a screenshot reads
        self._last_number: int | None = None
        self._awaiting_key = True
        self._asked_at = -KEYFRAME_RETRY_S
        # counters (under the lock)
        self.codec: str | None = None
        self._frames = self._bytes = self._dropped = self._track_frames = 0
        self._period = (time.monotonic(), 0, 0, 0, 0)  # start, frames, bytes, dropped, track
        self._first_at: float | None = None
        self._thread = threading.Thread(target=self._work, name="video-decoder", daemon=True)
        self._thread.start()

    # -- the event loop's side: never blocks -------------------------------------------------

    def feed(self, data: bytes) -> FrameHeader | None:
        """Queue a binary wire frame; None when `data` is not one. A frame that finds the
        queue full is skipped (and reported, so it is still acknowledged)."""
        parsed = parse_frame(data)
        if parsed is None:
            return None
        header, payload = parsed
        try:
            self._queue.put_nowait(("wire", self._generation, self._over_track, header, payload))
        except queue.Full:
            with self._lock:
                self._behind = True
                self._dropped += 1
            self._report("skipped", header.number)
        return header

    def feed_track(self, frame: VideoFrame, codec: str | None, rtp: int | None = None) -> None:
        """Queue a frame a WebRTC track delivered (already decoded by aiortc), with its RTP
        timestamp (None: not known)."""
        try:
            self._queue.put_nowait(("track", self._generation, self._over_track, frame, codec, rtp))
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def add_wire_bytes(self, count: int) -> None:
        """Bytes of a stream whose frames arrive decoded (the WebRTC track)."""
        with self._lock:
            self._bytes += count

    def new_connection(self, over_track: bool = False) -> None:
        """The next wire frame comes from a new connection: it starts with a keyframe.
        `over_track`: its picture is a video track, with palette tiles over it (FRP8)."""
        self._generation += 1
        self._over_track = over_track

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until the queued frames are decoded; call from a worker thread."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        with contextlib.suppress(queue.Full):  # else the daemon worker ends with the process
            self._queue.put_nowait(None)

    # -- what the person saw ----------------------------------------------------------------

    def picture(self) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
        """The latest picture as (height, width, 3) RGB, or None before the first frame."""
        with self._lock:
            latest = self._latest
        return None if latest is None else self._rgb(latest)

    def _rgb(self, latest: VideoFrame | TrackPicture) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
        if isinstance(latest, TrackPicture):
            with self._track_lock:
                return latest.picture()
        return np.asarray(latest.to_ndarray(format="rgb24"), np.uint8)

    def screenshot(self, path: str | Path) -> tuple[int, int] | None:
        """Write the latest picture as a PNG; its (width, height), or None with no picture
        yet. Blocking: run it in a worker thread."""
        rgb = self.picture()
        if rgb is None:
            return None
        encoder = av.CodecContext.create("png", "w")
        encoder.width, encoder.height = rgb.shape[1], rgb.shape[0]
        encoder.pix_fmt = "rgb24"
        packets = encoder.encode(VideoFrame.from_ndarray(rgb, format="rgb24"))
        packets += encoder.encode(None)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(bytes(p) for p in packets))
        return rgb.shape[1], rgb.shape[0]

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames

    def stats(self, whole: bool = False) -> Stats:
        """The period since the last call (or the whole stream), and start a new period."""
        now = time.monotonic()
        with self._lock:
            start, frames, nbytes, dropped, track = self._period
            if whole:  # from the first frame: connecting is not part of the stream
                start, frames, nbytes, dropped, track = self._first_at or now, 0, 0, 0, 0
            else:
                self._period = (now, self._frames, self._bytes, self._dropped, self._track_frames)
            elapsed = max(now - start, 1e-3)
            width, height = _size(self._latest)
            return Stats(
                fps=round((self._frames - frames) / elapsed, 2),
                mbit_s=round((self._bytes - nbytes) * 8 / elapsed / 1e6, 3),
                frames=self._frames - frames,
                dropped=self._dropped - dropped,
                codec=self.codec,
                width=width,
                height=height,
                track_frames=self._track_frames - track,
            )

    # -- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._connection(item[1], item[2])
                if item[0] == "track":
                    self._track_frame(item[3], item[4], item[5])
                else:
                    self._decode_wire(item[3], item[4])
            finally:
                self._queue.task_done()

    def _connection(self, generation: int, over_track: bool) -> None:
        """Start over for a new connection's frames (the picture shown stays until replaced)."""
        if generation == self._seen_generation:
            return
        self._seen_generation, self._last_number = generation, None
        self._awaiting_key = True
        self._decoders.clear()
        self._canvas = None
        self._rows.lose()
        old, self._track = self._track, TrackPicture() if over_track else None
        if old is not None and self._track is not None:
            with self._track_lock:
                self._track.video = old.picture()  # until the new track's first frame

    def _track_frame(self, frame: VideoFrame, codec: str | None, rtp: int | None) -> None:
        """A frame of the video track, shown under the palette tiles (alone before the
        connection opened, and if a late one comes after a fallback to FRP7)."""
        with self._lock:
            self._track_frames += 1
        track = self._track
        if track is None:
            self._keep(frame, codec, 0)
            return
        with self._track_lock:
            track.frame(frame, rtp)
        self._keep(track, codec, 0)

    def _decode_wire(self, header: FrameHeader, payload: bytes) -> None:
        if header.codec == CODEC_TRACK:  # no numbered frame: its number is an RTP timestamp
            self._track_regions(header, payload)
            return
        with self._lock:
            behind, self._behind = self._behind, False
        follows = self._last_number is None or header.number == (self._last_number + 1) % 2**32
        self._last_number = header.number
        if header.codec not in _INTRA and not header.key:
            reason = "behind" if behind else None if follows else "gap"
            if reason is None and self._awaiting_key:
                reason = "start"
            if reason is not None:
                self._skip(header.number, reason)
                return
        try:
            if header.codec == CODEC_PALETTE and self._track is not None:
                self._track_palette(header, payload)
                self._awaiting_key = False
                self._report("shown", header.number)
                return
            frame = self._decode(header, payload)
        except (av.FFmpegError, ValueError, zlib.error) as exc:
            self._decoders.pop(header.codec, None)
            self._skip(header.number, f"decoder error: {type(exc).__name__}: {exc}"[:120])
            return
        self._awaiting_key = False
        self._keep(frame, CODEC_NAMES[header.codec], HEADER.size + len(payload))
        self._report("shown", header.number)

    def _track_palette(self, header: FrameHeader, payload: bytes) -> None:
        """Palette tiles over the track: the picture shows them at once; it counts at its
        last frame, which is the track frame when one comes with them (FLAG_MORE)."""
        track = self._track
        assert track is not None
        with self._track_lock:
            track.palette(
                decode_palette(payload, track.sized(header.width, header.height), self._rows)
            )
        named = "palette" if self.codec is None else None  # until the track names its own
        self._keep(track, named, HEADER.size + len(payload), count=not header.flags & FLAG_MORE)

    def _track_regions(self, header: FrameHeader, payload: bytes) -> None:
        if self._track is None:
            return
        try:
            regions = split_regions(payload)[0]
        except ValueError as exc:  # which tiles the video shows is lost: all of them again
            self._ask_keyframe(f"track regions: {exc}")
            return
        with self._track_lock:
            self._track.regions(header.number, list(regions), header.width, header.height)
        self._keep(self._track, None, HEADER.size + len(payload), count=False)

    def _skip(self, number: int, reason: str) -> None:
        """Drop a frame that cannot be shown; ask for a keyframe."""
        with self._lock:
            self._dropped += 1
        self._ask_keyframe(reason)
        self._report("skipped", number)

    def _ask_keyframe(self, reason: str) -> None:
        """Ask for a keyframe (again after a while): every tile comes again."""
        now = time.monotonic()
        if not self._awaiting_key or now - self._asked_at >= KEYFRAME_RETRY_S:
            self._asked_at = now
            self._report("keyframe", reason)
        self._awaiting_key = True
        self._rows.lose()

    def _decode(self, header: FrameHeader, payload: bytes) -> VideoFrame | None:
        if header.codec == CODEC_PALETTE:
            canvas = self._base(header)
            decode_palette(payload, canvas, self._rows)
            if header.flags & FLAG_MORE:
                return None  # the picture is built at its last frame
            return VideoFrame.from_ndarray(canvas, format="rgb24")
        regions = None
        if header.flags & FLAG_TILES:
            regions, payload = split_regions(payload)
        else:
            self._canvas = None
        if header.codec == CODEC_RGB_ZLIB:
            rgb = np.frombuffer(zlib.decompress(payload), np.uint8)
            if rgb.size != header.width * header.height * 3:
                raise ValueError(f"{rgb.size} bytes for a {header.width}x{header.height} picture")
            return VideoFrame.from_ndarray(rgb.reshape(header.height, header.width, 3), "rgb24")
        decoder: Any = self._decoders.get(header.codec)
        if decoder is None:
            decoder = av.CodecContext.create(_AV_CODECS[header.codec], "r")
            self._decoders[header.codec] = decoder
        frames = decoder.decode(av.Packet(payload))
        if not frames or regions is None:
            return frames[-1] if frames else None
        canvas, picture = self._base(header), frames[-1].to_ndarray(format="rgb24")
        for x, y, w, h in regions:
            canvas[y : y + h, x : x + w] = picture[y : y + h, x : x + w]
        return VideoFrame.from_ndarray(canvas, format="rgb24")

    def _base(self, header: FrameHeader) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The picture that tiles of a mixed stream are drawn on."""
        size = (header.height, header.width, 3)
        if self._canvas is None or self._canvas.shape != size:
            with self._lock:
                latest = self._latest
            rgb = None if header.key or latest is None else self._rgb(latest)
            if header.key:
                self._canvas = np.zeros(size, np.uint8)
            elif rgb is not None and rgb.shape == size:
                self._canvas = np.array(rgb)
            else:
                raise ValueError("tiles with no picture of their size to draw on")
        return self._canvas

    def _keep(
        self,
        frame: VideoFrame | TrackPicture | None,
        codec: str | None,
        nbytes: int,
        count: bool = True,
    ) -> None:
        """Count a frame's bytes; keep the picture it completes, if it completes one (`count`:
        a picture of its own, not one the next frame completes). No `codec`: the one before
        names it (over FRP8 the track does)."""
        with self._lock:
            self._bytes += nbytes
            if frame is None:
                return
            if self._first_at is None:
                self._first_at = time.monotonic()
            self._latest = frame
            self.codec = codec or self.codec
            self._frames += count


def _size(latest: VideoFrame | TrackPicture | None) -> tuple[int, int]:
    """The picture's width and height (0, 0 without one)."""
    if isinstance(latest, TrackPicture):
        return latest.size
    return (latest.width, latest.height) if latest is not None else (0, 0)
