"""FRP8's text beside its video track: exact palette tiles on the control data channel.

VP8 at its quality ceiling spends about 20 KB a frame on a scrolling 720p xterm and still
blurs it; FRP7's palette tiles carry the same picture exactly in a few KB (media/mixed.py).
So the track splits each picture as FRP7 does, with a MixedCanvas whose encoder is the track
itself: the palette tiles go on the control channel as FRP7 binary frames, which the page
draws on its canvas, and the track's own picture keeps in those tiles what it carried last
(the canvas's encoder input), so VP8 spends almost nothing there. A picture of text alone
sends no VP8 frame at all; the track's repeats keep the video alive.

The page shows the `<video>` under a transparent canvas that holds the palette tiles. A tile
that turns to video must show it from the track frame that brings it, not before (the
video's older frames hold what was there before the text). A CODEC_TRACK frame names those
rectangles, with that track frame's RTP timestamp in the frame number field; the page reads
each presented frame's timestamp (requestVideoFrameCallback) and clears the tile from the
canvas at the first frame at or after it. A palette tile drawn since covers the video again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import changed_tiles
from openfrp.media.flight import InFlight
from openfrp.media.mixed import Frame, MixedCanvas, pack_regions, split_regions
from openfrp.media.wire import CODEC_H264, CODEC_PALETTE, CODEC_TRACK, FLAG_MORE, pack_frame

# Palette pictures not yet acknowledged before the track waits. Five, not three: a lost
# acknowledgement holds those behind it (the channel is ordered), and the page's SCTP resends
# it at once only when three more packets follow it (else after its timeout, 0.2 s or more);
# under 2 % loss, scrolling text went on at 26.6-29.5 fps instead of 23.6-26.1.
FLIGHT = 5
BUFFERED = 256 * 1024  # bytes the channel may hold unsent before the track waits
Regions = list[tuple[int, int, int, int]]  # x, y, width, height


class Handover:
    """The MixedCanvas's encoder: the video track encodes what the canvas leaves it."""

    codec = CODEC_H264
    width = height = 0

    def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
        return b"", key

    def set_bitrate(self, bits_per_second: int) -> None:
        """The track's budget sets its bitrate (media/track_budget.py)."""


HANDOVER = Handover()


@dataclass
class Split:
    """A picture split: palette frames for the channel, and the picture the track sends
    (None: no track frame needed) with the rectangles it brings."""

    frames: list[bytes]
    video: NDArray[np.uint8] | None
    regions: Regions


@dataclass
class TrackTiles:
    """What the page holds, to split the track's pictures (used in the track's worker)."""

    canvas: MixedCanvas | None = None
    last: NDArray[np.uint8] | None = None  # the picture last split
    number: int = 0  # of the next palette frame
    asked: bool = True  # the page wants every tile again (its palette stream broke)
    flight: InFlight = field(default_factory=InFlight)

    def busy(self, buffered: int) -> bool:
        """Whether the page is behind: the next picture waits (and skips those between)."""
        return len(self.flight) >= FLIGHT or buffered > BUFFERED

    def acked(self, frame: int) -> None:
        self.flight.done(frame)

    def ask(self) -> None:
        self.asked = True
        self.flight.clear()

    def changed(self, pixels: NDArray[np.uint8]) -> NDArray[np.bool_] | None:
        """The tiles changed since the last picture split (all when the page asks), or None."""
        changed = changed_tiles(self.last, pixels)
        if self.asked:
            changed[:] = True
        return changed if changed.any() else None

    @property
    def lossy(self) -> int:
        """How many tiles the video last drew (lossy until sharpened into palette tiles)."""
        return 0 if self.canvas is None else int(self.canvas.lossy.sum())

    def split(
        self, pixels: NDArray[np.uint8], changed: NDArray[np.bool_], refine: bool, video: bool
    ) -> Split:
        """The palette frames and track picture for `pixels`: the tiles `changed`, or the
        video's tiles again to sharpen them (`refine`); `video`: a track frame is needed."""
        height, width = pixels.shape[:2]
        canvas, key = self.canvas, self.asked
        if canvas is None or canvas.lossy.shape != changed.shape:
            canvas = self.canvas = MixedCanvas(np.zeros_like(changed))
            key = video = True  # the track's own size follows (its repeats are of this size)
        self.asked = False
        self.last = pixels
        palette: list[Frame] = []
        regions: Regions = []
        brought = False
        for frame in canvas.encode(HANDOVER, pixels, changed, key, refine):
            if frame.codec == CODEC_PALETTE:
                palette.append(frame)
            else:
                regions, brought = split_regions(frame.payload)[0], True
        if canvas.h264_input is None:
            canvas.h264_input = pixels.copy()
        more = FLAG_MORE if brought or video else 0  # the page counts the picture at its video
        frames = []
        for frame in palette:
            flags = frame.flags & ~FLAG_MORE | more
            frames.append(pack_frame(self.number, width, height, frame.codec, flags, frame.payload))
            self.flight.sent(self.number, self.number)
            self.number += 1
        return Split(frames, canvas.h264_input if brought or video else None, regions)

    def sharpen(self, pixels: NDArray[np.uint8], video: bool) -> Split:
        """The video's tiles again: as palette tiles where they hold few colours now."""
        assert self.canvas is not None and self.canvas.h264_input is not None  # split before
        if not self.lossy:  # all of it exact already: the track's picture again, if asked
            return Split([], self.canvas.h264_input if video else None, [])
        return self.split(pixels, np.zeros_like(self.canvas.lossy), True, video)

    def video(self) -> NDArray[np.uint8] | None:
        """The picture the track sent last (what a keyframe or a repeat sends again)."""
        return None if self.canvas is None else self.canvas.h264_input


def regions_frame(rtp: int, width: int, height: int, regions: Regions) -> bytes:
    return pack_frame(rtp, width, height, CODEC_TRACK, 0, pack_regions(list(regions), b""))
