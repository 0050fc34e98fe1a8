"""The mixed stream: palette tiles where the screen has few colours, H.264 where it has many.

A desktop is mostly text and flat colours with a photo or a video here and there. The tiles
of few colours go as palette frames (media/palette.py, exact); the others as H.264 frames
flagged FLAG_TILES, whose payload starts with the rectangles the terminal takes from the
decoded picture, so a video beside a terminal never blurs the terminal's text. The H.264
decoder keeps its own reference of the whole picture; a keyframe sent as palette tiles makes
the next H.264 frame a keyframe. The encoder sees the palette tiles as they were when it
last carried them, so it spends no bits on text the terminal takes from palette tiles.
Measured on ffmpeg's testsrc2 at 720p (flat bars beside motion): about 9.5 KB of H.264 and
2 KB of exact palette tiles a frame, against 9.9 KB of H.264 alone.

H.264 tiles payload: "!H" rectangle count, each rectangle "!HHHH" x, y, width, height, then
the Annex B access unit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import TILE
from openfrp.media.encoder import Encoder
from openfrp.media.palette import MAX_COLOURS, RECT, encode_palette, rectangles
from openfrp.media.rows import RowIndex
from openfrp.media.wire import CODEC_H264, CODEC_PALETTE, FLAG_KEY, FLAG_MORE, FLAG_TILES

COUNT = struct.Struct("!H")
FEW_IN_SAMPLE = 64  # a tile whose every other pixel shows more colours is a picture's
SHARED_COLOURS = 192  # sampled colours the palette tiles may share: room for those unseen
RETRY_AFTER = 8  # frames a colour count that found too many is not made again
NARROWER = 4  # a count of the few-colour tiles that found too many is made again with tiles
# of a quarter as many sampled colours (64, 16, 4): text beside a video's soft edges
REFINE_GROUPS = 4  # palette frames a refinement sends at most; its next pass sends more


def pack_regions(regions: list[tuple[int, ...]], payload: bytes) -> bytes:
    return COUNT.pack(len(regions)) + b"".join(RECT.pack(*r) for r in regions) + payload


def split_regions(payload: bytes) -> tuple[list[tuple[int, int, int, int]], bytes]:
    """The rectangles and the access unit of an H.264 tiles payload; ValueError when cut."""
    if len(payload) < COUNT.size:
        raise ValueError("H.264 tiles frame shorter than its header")
    (count,) = COUNT.unpack_from(payload)
    end = COUNT.size + count * RECT.size
    if len(payload) < end:
        raise ValueError("H.264 tiles frame cut short")
    rects = [RECT.unpack_from(payload, COUNT.size + i * RECT.size) for i in range(count)]
    return rects, payload[end:]


def tile_samples(pixels: NDArray[np.uint8], tiles: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Every other pixel of every other row of each tile set in `tiles`, as (tiles set, 1024)
    colours in the order of `np.argwhere(tiles)` (edge tiles padded with their own last
    pixels). Only those tiles: a 1080p frame of motion changes a fifth of them, and sampling
    the whole screen took 2.3 ms."""
    sample = pixels.view(np.uint32)[::2, ::2, 0]
    side = TILE // 2
    at = np.argwhere(tiles)
    span = np.arange(side)
    rows = np.minimum(at[:, :1] * side + span, sample.shape[0] - 1)
    columns = np.minimum(at[:, 1:] * side + span, sample.shape[1] - 1)
    picked: NDArray[np.uint32] = sample[rows[:, :, None], columns[:, None, :]]
    return (picked & np.uint32(0xFFFFFF)).reshape(len(at), side * side)


def _distinct(ordered: NDArray[np.uint32]) -> NDArray[np.intp]:
    """How many colours each sorted sample along the last axis holds."""
    counts: NDArray[np.intp] = 1 + np.count_nonzero(np.diff(ordered, axis=-1), axis=-1)
    return counts


def few_colour_tiles(
    pixels: NDArray[np.uint8], tiles: NDArray[np.bool_], limit: int = FEW_IN_SAMPLE
) -> NDArray[np.bool_]:
    """Of the tiles set, those that look like text or flat colour (few colours sampled),
    as many as share one palette: the fewest-coloured first. A glance at an eighth of each
    sample rules out most tiles of a video (more colours there than a tile may have), so
    only the others are sorted in full: 2.4 instead of 13 ms a 1080p frame of noise, 5.4
    instead of 6.2 ms one of ffplay's testsrc2 (flat bars: more tiles left in doubt)."""
    samples = tile_samples(pixels, tiles)
    maybe = _distinct(np.sort(samples[:, ::8], axis=1)) <= limit
    where = np.argwhere(tiles)[maybe]
    ordered = np.sort(samples[maybe], axis=1)
    first = np.ones_like(ordered, np.bool_)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    counts = first.sum(axis=1)
    distinct = ordered[first].tolist()  # each tile's colours, tile after tile
    ends, sizes = np.cumsum(counts).tolist(), counts.tolist()
    few = np.zeros_like(tiles)
    union: set[int] = set()
    for k in sorted(np.flatnonzero(counts <= limit).tolist(), key=sizes.__getitem__):
        colours = union.union(distinct[ends[k] - sizes[k] : ends[k]])
        if len(colours) <= SHARED_COLOURS:
            union, few[tuple(where[k])] = colours, True
    return few


def exact_groups(
    pixels: NDArray[np.uint8], tiles: NDArray[np.bool_], most: int
) -> list[NDArray[np.bool_]]:
    """The tiles set in `tiles` that hold at most MAX_COLOURS colours each, in at most `most`
    groups whose tiles hold at most that many together: first fit, the most-coloured tiles
    first. Antialiased text has 80-250 colours a tile and more than 256 on a screen, so one
    palette of them all, or of the tiles few-coloured in a sample, never fits; a still
    screen's refinement sends them as a palette frame a group instead, exact."""
    screen = pixels.view(np.uint32)[:, :, 0] & np.uint32(0xFFFFFF)
    found: list[tuple[set[int], int, int]] = []
    for row, col in np.argwhere(tiles).tolist():
        tile = screen[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
        held = np.unique(tile)
        if len(held) <= MAX_COLOURS:
            found.append((set(held.tolist()), row, col))
    found.sort(key=lambda item: -len(item[0]))
    groups: list[tuple[set[int], NDArray[np.bool_]]] = []
    for colours, row, col in found:
        for union, mask in groups:
            if len(union) + len(colours - union) <= MAX_COLOURS:
                union |= colours
                mask[row, col] = True
                break
        else:
            if len(groups) < most:
                mask = np.zeros_like(tiles)
                mask[row, col] = True
                groups.append((colours, mask))
    return [mask for _, mask in groups]


@dataclass
class Frame:
    codec: int
    payload: bytes
    flags: int


@dataclass
class MixedCanvas:
    """What a mixing terminal's picture holds, to choose each tile's codec."""

    lossy: NDArray[np.bool_]  # tiles H.264 drew last
    h264_key: bool = True  # the terminal's H.264 decoder has nothing to refer to yet
    h264_input: NDArray[np.uint8] | None = None  # the picture the encoder was given last
    rows: RowIndex = field(default_factory=RowIndex)  # the terminal's row cache
    whole_rest: int = 0  # frames before all changed tiles are counted as one palette again
    few_rest: int = 0  # frames before the few-colour tiles are counted as one palette again
    few_limit: int = FEW_IN_SAMPLE  # sampled colours a few-colour tile may show, for now
    limit_rest: int = 0  # frames before a narrowed limit is widened again

    def encode(
        self,
        encoder: Encoder,
        pixels: NDArray[np.uint8],
        changed: NDArray[np.bool_],
        key: bool,
        refine: bool,
    ) -> Iterator[Frame]:
        """The frames that bring the terminal's picture to `pixels`: the tiles asked for
        (every tile for a keyframe, the lossy ones for a refinement, else those changed)
        as palette tiles where they have few colours, the rest as H.264 tiles. Each frame is
        yielded when ready: palette tiles leave before H.264 encodes (about 10 ms at 720p),
        so text beside a video does not wait for it.

        A count of colours that found more than a palette holds (a video, or the soft
        edges in one) rests RETRY_AFTER frames: at 1080p the two counts cost
        8.5 ms of a 31 ms frame of motion, for a palette frame in 2 % of them."""
        tiles = np.ones_like(changed) if key else self.lossy.copy() if refine else changed
        flag = FLAG_KEY if key else 0
        if key:
            self.rows.fresh = True  # the terminal's row cache starts over with the picture
        sure = key or refine  # the picture is counted, whatever the counts found lately
        if sure or not self.whole_rest:
            payload = encode_palette(pixels, tiles, self.rows)
            if payload is not None:
                self.lossy &= ~tiles
                self.h264_key = self.h264_key or key
                yield Frame(CODEC_PALETTE, payload, flag)
                return
            self.whole_rest = RETRY_AFTER
        else:
            self.whole_rest -= 1
        palettes = (
            self._exact(pixels, tiles) if refine and not key else self._few(pixels, tiles, sure)
        )
        for few, _ in palettes:
            self.lossy &= ~few
            tiles = tiles & ~few  # the caller's mask stays as it was
        for n, (_, palette) in enumerate(palettes, 1):
            if n == len(palettes) and not tiles.any():  # all of it exact this way
                self.h264_key = self.h264_key or key
                yield Frame(CODEC_PALETTE, palette, flag)
                return
            yield Frame(CODEC_PALETTE, palette, flag | FLAG_MORE)
        height, width = pixels.shape[:2]
        regions = rectangles(tiles, width, height)
        if self.h264_input is None or self.h264_input.shape != pixels.shape:
            self.h264_input = pixels.copy()
        for x, y, w, h in regions:
            self.h264_input[y : y + h, x : x + w] = pixels[y : y + h, x : x + w]
        unit, h264_key = encoder.encode(self.h264_input, key or self.h264_key)
        self.h264_key = False
        self.lossy |= tiles
        flags = FLAG_TILES | (FLAG_KEY if h264_key else 0)
        yield Frame(CODEC_H264, pack_regions(regions, unit), flags)

    def _exact(
        self, pixels: NDArray[np.uint8], tiles: NDArray[np.bool_]
    ) -> list[tuple[NDArray[np.bool_], bytes]]:
        """A refinement's palette frames: of `tiles`, each exact_groups group as one."""
        palettes = []
        for group in exact_groups(pixels, tiles, REFINE_GROUPS):
            payload = encode_palette(pixels, group, self.rows)
            if payload is not None:
                palettes.append((group, payload))
        return palettes

    def _few(
        self, pixels: NDArray[np.uint8], tiles: NDArray[np.bool_], sure: bool
    ) -> list[tuple[NDArray[np.bool_], bytes]]:
        """The tiles of few colours among `tiles` and their palette payload (none when
        none, or they hold more colours together than a palette does). Text beside a video: the
        tiles the video's window cuts look few-coloured in the sample but hold its gradients,
        and counted with them the text went as H.264 too (9 fps at the bitrate's ceiling);
        so a count that finds too many is made again over tiles of fewer sampled colours,
        and the limit that worked is kept RETRY_AFTER frames."""
        if self.limit_rest:
            self.limit_rest -= 1
        else:
            self.few_limit = FEW_IN_SAMPLE
        if self.few_rest and not sure:  # resting: not even sampled
            self.few_rest -= 1
            return []
        few = few_colour_tiles(pixels, tiles, self.few_limit)
        if not few.any():
            return []
        limit = self.few_limit
        while True:
            palette = encode_palette(pixels, few, self.rows)
            if palette is not None or limit // NARROWER < 2:
                break
            limit //= NARROWER
            few = few_colour_tiles(pixels, tiles, limit)
            if not few.any():
                break
        if palette is None:
            self.few_rest = RETRY_AFTER
            return []
        if limit != self.few_limit:
            self.few_limit, self.limit_rest = limit, RETRY_AFTER
        return [(few, palette)]
