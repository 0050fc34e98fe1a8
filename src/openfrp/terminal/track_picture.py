"""FRP8's picture in the Python terminal: the video track with the channel's palette tiles over it.

A hello that lists "track-tiles" gets text as FRP7's exact palette tiles on the data channel
and the rest on the video track (media/track_tiles.py), as the page does (video.js). The
picture is the palette canvas where a tile drew and the newest track frame elsewhere. A
CODEC_TRACK frame names the tiles that turn to video with the RTP timestamp of the track frame
that brings them (rtc.rtp_timestamp): from the first track frame at or after it the video
shows there, until a palette tile drawn since covers it again. So text is as exact as over
FRP7 and VP8 carries only what is not text. A frame whose timestamp is not known shows every
tile named so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import TILE

Rect = tuple[int, ...]  # x, y, width, height
Tile = tuple[int, int]  # row, column


class Decoded(Protocol):
    """A decoded track frame (PyAV's VideoFrame): turned to RGB only when a picture is asked
    for. Converting every 720p frame cost the terminal a twentieth of a core; the picture is
    seldom asked for (screenshots)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    def to_ndarray(self, channel_last: bool = ..., **kwargs: Any) -> Any: ...


def at_or_after(rtp: int, since: int) -> bool:
    """Whether RTP timestamp `rtp` is `since` or later (32 bits, wrapping)."""
    return (rtp - since) % 2**32 < 2**31


def tiles(rects: Iterable[Rect], width: int, height: int) -> Iterator[Tile]:
    """The tiles `rects` touch, within a picture of `width` x `height` (a rectangle past its
    edge, from a peer's garbage, costs no more than the picture's own tiles)."""
    for x, y, w, h in rects:
        for row in range(y // TILE, (min(y + h, height) + TILE - 1) // TILE):
            for column in range(x // TILE, (min(x + w, width) + TILE - 1) // TILE):
                yield row, column


class TrackPicture:
    """The palette canvas, where it is opaque, over the newest track frame."""

    def __init__(self) -> None:
        self.canvas: NDArray[np.uint8] | None = None  # what palette tiles drew
        self.opaque: NDArray[np.bool_] | None = None  # where the canvas shows, not the video
        self._video: NDArray[np.uint8] | None = None  # the newest track frame, RGB
        self._decoded: Decoded | None = None  # or that frame still to be turned to RGB
        self._video_shape: tuple[int, ...] | None = None
        self.rtp: int | None = None  # its RTP timestamp (None: not known)
        self.framed = False  # a track frame came: `rtp` is its timestamp
        self.resized_last = False  # the canvas took its size after the newest track frame
        self.since: dict[Tile, int] = {}  # tiles turning to video, from this RTP timestamp
        self.shown: set[Tile] = set()  # tiles the video shows now

    @property
    def video(self) -> NDArray[np.uint8] | None:
        """The newest track frame as RGB."""
        if self._decoded is not None:
            self._video = np.asarray(self._decoded.to_ndarray(format="rgb24"), np.uint8)
            self._decoded = None
        return self._video

    @video.setter
    def video(self, rgb: NDArray[np.uint8] | None) -> None:
        self._video, self._decoded = rgb, None
        self._video_shape = None if rgb is None else rgb.shape

    @property
    def size(self) -> tuple[int, int]:
        """The picture's width and height (0, 0 before anything came)."""
        shape = self.canvas.shape if self.canvas is not None else self._video_shape
        return (shape[1], shape[0]) if shape is not None else (0, 0)

    def sized(self, width: int, height: int) -> NDArray[np.uint8]:
        """The canvas, clear (the video shows) and new when the picture's size changed."""
        if self.canvas is None or self.canvas.shape[:2] != (height, width):
            self.canvas = np.zeros((height, width, 3), np.uint8)
            self.opaque = np.zeros((height, width), np.bool_)
            self.since.clear()
            self.shown.clear()
            self.resized_last = True
        return self.canvas

    def palette(self, rects: list[Rect]) -> None:
        """Palette tiles were drawn on the canvas (sized() first): they cover the video."""
        assert self.opaque is not None
        for tile in tiles(rects, self.opaque.shape[1], self.opaque.shape[0]):
            self.since.pop(tile, None)
            self.shown.discard(tile)
        for x, y, w, h in rects:
            self.opaque[y : y + h, x : x + w] = True

    def regions(self, rtp: int, rects: list[Rect], width: int, height: int) -> None:
        """The track frame of timestamp `rtp` brings `rects` on; it may be here already."""
        self.sized(width, height)
        for tile in tiles(rects, width, height):
            if tile not in self.since and tile not in self.shown:
                self.since[tile] = rtp
        if self.framed:
            self._uncover(self.rtp)

    def frame(self, video: NDArray[np.uint8] | Decoded, rtp: int | None) -> None:
        """The newest track frame, RGB or decoded, and its RTP timestamp."""
        if isinstance(video, np.ndarray):
            self.video = video
        else:
            self._video, self._decoded = None, video
            self._video_shape = (video.height, video.width, 3)
        self.rtp, self.framed, self.resized_last = rtp, True, False
        self._uncover(rtp)

    def _fits(self) -> bool:
        return self.canvas is not None and self._video_shape == self.canvas.shape

    def _uncover(self, rtp: int | None) -> None:
        """Clear from the canvas the tiles the track frame of timestamp `rtp` shows."""
        if not self._fits() or self.opaque is None:  # a frame of the size before a resize
            return
        due = [t for t, since in self.since.items() if rtp is None or at_or_after(rtp, since)]
        for row, column in due:
            del self.since[row, column]
            self.shown.add((row, column))
            self.opaque[row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE] = False

    def picture(self) -> NDArray[np.uint8] | None:
        """What the person sees: the canvas over the video (black before the video has this
        size; the video alone while the canvas has a size the screen no longer has)."""
        if self.canvas is None or self.opaque is None:
            return self.video
        video = self.video
        if self._fits():
            assert video is not None
            out = video.copy()
        elif self.resized_last or video is None:
            out = np.zeros_like(self.canvas)
        else:
            return video
        np.copyto(out, self.canvas, where=self.opaque[..., None])
        return out
