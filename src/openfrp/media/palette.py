"""Indexed-colour frames: the changed tiles of a screen of text, lossless and small.

Text on a desktop has few colours and sharp edges, which is what a video codec does worst: a
scrolling 1280x720 xterm costs H.264 about 24 KB a frame at a quality floor that already
blurs it, while the same picture as 1-bit indices with deflate is 7 KB and exact (the
approach of VNC's Tight encoding). So a terminal that draws `palette` gets the changed tiles
this way whenever they hold at most 256 colours, and H.264 only for pictures with more.

Payload: "!BBH" bits per index (1, 2, 4 or 8, or'd with BANDS, ROWS and RESET), colours - 1,
rectangle count; the colours as RGB triplets; each rectangle as "!HHHH" x, y, width, height;
with ROWS, "!I" the number of runs (media/rows.py) and "!I" how many bytes the data inflates
to; then the deflated data: with ROWS the runs ("!IH" each, covering every rectangle's rows in
order, never two rectangles), then the indices of each run of rows sent as indices (without
ROWS, each rectangle is one such run). RESET: the terminal's row cache starts over before
this frame. BANDS names the layout of the indices, the only one: a run's rows go in bands of
8 / bits rows (the last band padded with index 0), each band as one byte per column, its
first row in the most significant bits. A glyph of text is then the same bytes wherever it
stands on its line, which deflate finds again: a scrolling listing in a 1-bit bitmap font
deflates to 28-32 % fewer bytes than row by row, 2- and 4-bit coloured text 16 % fewer; at 8
bits a band is one row. A frame without BANDS is from a server of another layout: refused.

Without ROWS the data is a zlib stream of its own. With ROWS it goes on from the previous
frame's (each frame ends with a sync flush; RESET starts a new stream), so text that came
before helps deflate what comes now: 6 % fewer bytes on a listing never seen, 12-15 % once
it repeats. Like the row cache, the stream needs every frame: a terminal that missed one
waits for RESET.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import TILE
from openfrp.media.rows import LITERAL, RUN, RowIndex, RowStore

HEAD = struct.Struct("!BBH")
RECT = struct.Struct("!HHHH")
COUNT = struct.Struct("!I")
ROWS, RESET, BANDS = 0x80, 0x40, 0x20  # flags in the bits byte
MAX_COLOURS = 256
ZLIB_LEVEL = 6  # a scrolling 720p xterm: 4.6 KB a frame in 9 ms; level 9: 4.2 KB in 13 ms
SAMPLE = 4  # colours are first counted on every 4th pixel of every 4th row
SLOT_BITS = 16  # a colour table's slots: 256 colours share none for 6 multipliers in 10
SHIFT = np.uint32(32 - SLOT_BITS)
MULTIPLIERS = tuple(np.uint32(m) for m in (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F))
NO_COLOUR = 0xFFFFFFFF  # no pixel has it: colours are 24 bits
WIDEN_NEW = 32  # new colours the sample of the tiles between changed ones may bring
# Tile rows stack as one rectangle up to twice their area: a scrolling 720p listing then
# costs 1,009 instead of 1,285 B a frame (1 instead of 8 rectangles, whose rows make fewer
# runs), coloured `ls` 3,075 instead of 3,357; 0.8 ms more a frame to encode.
STACK_SLACK = 2.0


def rectangles(mask: NDArray[np.bool_], width: int, height: int) -> list[tuple[int, ...]]:
    """The changed tiles as rectangles: runs of tiles along each tile row, clipped."""
    found: list[tuple[int, ...]] = []
    for row, line in enumerate(mask):
        y = row * TILE
        column, columns = 0, len(line)
        while column < columns:
            if not line[column]:
                column += 1
                continue
            start = column
            while column < columns and line[column]:
                column += 1
            x = start * TILE
            found.append((x, y, min(column * TILE, width) - x, min(TILE, height - y)))
    return found


def spans(
    mask: NDArray[np.bool_], width: int, height: int, slack: float = 1.0
) -> list[tuple[int, ...]]:
    """Each tile row's changed tiles as one rectangle from the first to the last, and tile
    rows stacked as one rectangle across both their spans while that covers at most `slack`
    times their area (1.0: only rows of the same span). A scrolled listing leaves a column
    put (the same permissions on every line) that would split its lines in two rectangles;
    its lines end at different tiles, which would cut a screen into a rectangle every few
    lines. Whole lines are rows the row cache finds again, and a tall rectangle's rows make
    fewer runs."""
    found: list[tuple[int, ...]] = []
    for row, line in enumerate(mask):
        changed = np.flatnonzero(line)
        if not len(changed):
            continue
        x, y = int(changed[0]) * TILE, row * TILE
        w, h = min(int(changed[-1] + 1) * TILE, width) - x, min(TILE, height - y)
        if found and found[-1][1] + found[-1][3] == y:
            was_x, was_y, was_w, was_h = found[-1]
            left, right = min(was_x, x), max(was_x + was_w, x + w)
            if (right - left) * (was_h + h) <= slack * (was_w * was_h + w * h):
                found[-1] = (left, was_y, right - left, was_h + h)
                continue
        found.append((x, y, w, h))
    return found


Table = tuple[np.uint32, NDArray[np.uint32], NDArray[np.uint8]]  # multiplier, keys, indices


def _table(colours: NDArray[np.uint32]) -> Table | None:
    """A table that finds each of `colours` (sorted, at most 256) by a multiplicative hash
    with no two in one slot, or None when the multipliers tried all collide (rare: a binary
    search does then). A multiply, a shift and two gathers a pixel: 1 ms for 150,000 pixels,
    where np.searchsorted takes 7."""
    for multiplier in MULTIPLIERS:
        slots = (colours * multiplier) >> SHIFT
        if len(np.unique(slots)) == len(colours):
            keys = np.full(1 << SLOT_BITS, NO_COLOUR, np.uint32)
            indices = np.zeros(1 << SLOT_BITS, np.uint8)
            keys[slots], indices[slots] = colours, np.arange(len(colours))
            return multiplier, keys, indices
    return None


def _lookup(
    colours: NDArray[np.uint32], table: Table | None, part: NDArray[np.uint32]
) -> tuple[NDArray[np.uint8], NDArray[np.uint32]]:
    """The index among `colours` of each pixel of `part`, and the pixels not among them."""
    if table is None:
        at = np.minimum(np.searchsorted(colours, part), len(colours) - 1)
        return at.astype(np.uint8), part[colours[at] != part]
    multiplier, keys, indices = table
    slots = (part * multiplier) >> SHIFT
    return indices[slots], part[keys[slots] != part]


def _colours(parts: list[NDArray[np.uint32]]) -> NDArray[np.uint32] | None:
    """The sorted colours of `parts`, or None when there are more than MAX_COLOURS. The
    first part's sample is counted alone, so a video's first rectangle ends the count (2 ms
    less a frame of 720p motion); the others' at once (one count of 24 rectangles' samples
    takes 0.5 ms, one at a time 5). The pixels the sample missed are counted as soon as
    there are more of them than colours left: a video's soft edges fit the sample but not
    the palette (0.9 ms a frame of 720p motion to find it by looking at every pixel)."""
    sample = np.zeros(0, np.uint32)
    for batch in (parts[:1], parts[1:]):
        if batch:
            more = np.concatenate([part[::SAMPLE, ::SAMPLE].ravel() for part in batch])
            sample = np.union1d(sample, more)
        if len(sample) > MAX_COLOURS:
            return None
    table, every = _table(sample), sample
    missed: list[NDArray[np.uint32]] = []
    unsure = 0  # pixels missed since `every` was counted
    for part in parts:
        missed.append(_lookup(sample, table, part)[1])
        unsure += len(missed[-1])
        if unsure > MAX_COLOURS - len(every):
            every, missed, unsure = np.union1d(every, np.concatenate(missed)), [], 0
            if len(every) > MAX_COLOURS:
                return None
    return np.union1d(every, np.concatenate(missed)) if unsure else every


def _widened(
    screen: NDArray[np.uint32],
    mask: NDArray[np.bool_],
    found: list[tuple[int, ...]],
    colours: NDArray[np.uint32],
) -> tuple[list[tuple[int, ...]], NDArray[np.uint32]]:
    """The widest spans of `mask` (STACK_SLACK, then same spans only) whose unchanged tiles
    fit in one palette with the changed ones (a video between two lines of text does not),
    and their colours; else `found` and `colours` as they were."""
    height, width = screen.shape
    tried: list[tuple[int, ...]] = []
    for slack in (STACK_SLACK, 1.0):
        wide = spans(mask, width, height, slack)
        if wide == found:
            return found, colours
        if wide == tried:  # nothing stacked across spans: the same tiles were just counted
            continue
        merged = _gap_colours(screen, mask, wide, colours)
        if merged is not None:
            return wide, merged
        tried = wide
    return found, colours


def _gap_colours(
    screen: NDArray[np.uint32],
    mask: NDArray[np.bool_],
    wide: list[tuple[int, ...]],
    colours: NDArray[np.uint32],
) -> NDArray[np.uint32] | None:
    """The colours of `wide` with the unchanged tiles it adds, or None past the palette.
    Tiles between lines of text hold the text's colours: tiles whose sample brings more than
    WIDEN_NEW colours are not counted (between a video's edges they brought 60-700, and
    counting them cost 0.5-1 ms a frame of 720p motion)."""
    height, width = screen.shape
    gaps = np.zeros_like(mask)
    for x, y, w, h in wide:
        gaps[y // TILE : -(-(y + h) // TILE), x // TILE : -(-(x + w) // TILE)] = True
    parts = [screen[y : y + h, x : x + w] for x, y, w, h in rectangles(gaps & ~mask, width, height)]
    if not parts:  # spans that only stack rectangles
        return colours
    sample = np.concatenate([part[::SAMPLE, ::SAMPLE].ravel() for part in parts])
    if len(np.union1d(colours, sample)) > len(colours) + WIDEN_NEW:
        return None
    added = _colours(parts)
    merged = None if added is None else np.union1d(colours, added)
    return None if merged is None or len(merged) > MAX_COLOURS else merged


def _indexed(
    colours: NDArray[np.uint32], table: Table | None, part: NDArray[np.uint32]
) -> NDArray[np.uint8]:
    found, missed = _lookup(colours, table, part)
    if len(missed):
        raise ValueError("a pixel's colour is not among the palette's")  # counted before
    return found


def _bands(indices: NDArray[np.uint8], bits: int) -> NDArray[np.uint8]:
    """A run's rows of indices in bands of 8 // bits rows, a byte per column of a band."""
    per_byte = 8 // bits
    height, width = indices.shape
    padded = np.zeros((-(-height // per_byte) * per_byte, width), np.uint8)
    padded[:height] = indices
    bands = padded.reshape(-1, per_byte, width)
    packed = np.zeros((len(bands), width), np.uint8)
    for slot in range(per_byte):
        packed |= bands[:, slot] << (8 - bits * (slot + 1))
    return packed


def _literal_runs(
    part: NDArray[np.uint32], runs: list[tuple[int, int]]
) -> list[NDArray[np.uint32]]:
    """The runs of `part`'s rows sent as indices, in order."""
    found, row = [], 0
    for start, count in runs:
        if start == LITERAL:
            found.append(part[row : row + count])
        row += count
    return found


def encode_palette(
    pixels: NDArray[np.uint8], mask: NDArray[np.bool_], rows: RowIndex | None = None
) -> bytes | None:
    """The payload for the tiles set in `mask` of a BGRX picture, or None when they hold
    more than 256 colours (a photo, a video: H.264's work). With a row cache, the rows the
    terminal holds go as ids."""
    height, width = pixels.shape[:2]
    found = rectangles(mask, width, height)
    screen = pixels.view(np.uint32)[:, :, 0] & np.uint32(0xFFFFFF)
    parts = [screen[y : y + h, x : x + w] for x, y, w, h in found]
    colours = _colours(parts) if parts else np.zeros(1, np.uint32)
    if colours is None:
        return None
    if rows is not None:
        found, colours = _widened(screen, mask, found, colours)
        parts = [screen[y : y + h, x : x + w] for x, y, w, h in found]
    flags, count, runs = BANDS, b"", b""
    literal = [[part] for part in parts]
    if rows is not None:
        flags |= ROWS | (RESET if rows.begin() else 0)
        planned = [rows.runs(part) for part in parts]
        literal = [_literal_runs(p, r) for p, r in zip(parts, planned, strict=True)]
        every = [run for part_runs in planned for run in part_runs]
        count, runs = COUNT.pack(len(every)), b"".join(RUN.pack(*run) for run in every)
    bits = next(b for b in (1, 2, 4, 8) if len(colours) <= 1 << b)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    table = _table(colours)
    packed = [_bands(_indexed(colours, table, run), bits) for runs_ in literal for run in runs_]
    data = [runs, *(p.tobytes() for p in packed)]
    if rows is None:
        packer, finish = zlib.compressobj(ZLIB_LEVEL), zlib.Z_FINISH
    else:
        packer, finish = rows.deflate(ZLIB_LEVEL), zlib.Z_SYNC_FLUSH
        count += COUNT.pack(sum(len(part) for part in data))
    body = b"".join(packer.compress(part) for part in data) + packer.flush(finish)
    head = HEAD.pack(bits | flags, len(colours) - 1, len(found)) + rgb.astype(np.uint8).tobytes()
    return head + b"".join(RECT.pack(*r) for r in found) + count + body


def decode_palette(
    payload: bytes, picture: NDArray[np.uint8], rows: RowStore | None = None
) -> list[tuple[int, ...]]:
    """Draw a palette payload into an RGB (height, width, 3) picture, remembering its rows in
    `rows`; the rectangles drawn. ValueError when the payload does not fit the picture or the
    cache."""
    if len(payload) < HEAD.size:
        raise ValueError("palette frame shorter than its header")
    flags, top, count = HEAD.unpack_from(payload)
    bits = flags & ~(ROWS | RESET | BANDS)
    if not flags & BANDS:
        raise ValueError("palette frame in a layout without bands (a server of another version)")
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"palette frame with {bits} bits per index")
    at = HEAD.size + (top + 1) * 3
    rects_end = at + count * RECT.size + (2 * COUNT.size if flags & ROWS else 0)
    if len(payload) < rects_end:
        raise ValueError("palette frame cut short")
    if flags & ROWS and rows is None:
        raise ValueError("palette frame refers to a row cache this terminal does not keep")
    colours = np.frombuffer(payload, np.uint8, (top + 1) * 3, HEAD.size).reshape(-1, 3)
    rects = [RECT.unpack_from(payload, at + i * RECT.size) for i in range(count)]
    store = rows if flags & ROWS else None
    if store is not None and flags & RESET:
        store.reset()
    data = _inflated(payload, rects_end, store)
    runs: list[tuple[int, int]] = []
    if store is not None:
        (total,) = COUNT.unpack_from(payload, rects_end - 2 * COUNT.size)
        if len(data) < total * RUN.size:
            raise ValueError("palette frame's row runs cut short")
        runs = [RUN.unpack_from(data, i * RUN.size) for i in range(total)][::-1]
    offset = RUN.size * len(runs)
    for x, y, w, h in rects:
        if x + w > picture.shape[1] or y + h > picture.shape[0]:
            raise ValueError(f"palette rectangle {w}x{h}+{x}+{y} outside the picture")
        done = 0
        while done < h:
            if store is not None and not runs:
                raise ValueError("palette row runs end before the rectangles")
            start, n = runs.pop() if store is not None else (LITERAL, h)
            if n == 0 or done + n > h:
                raise ValueError("palette row runs do not fit the rectangles")
            target = picture[y + done : y + done + n, x : x + w]
            if store is None or start == LITERAL:
                indices, offset = _indices(data, offset, n, w, bits, top)
                # into the picture directly, and unbuffered (`clip`: every index is checked
                # against the colours already): a quarter of the time of colours[indices]
                np.take(colours, indices, axis=0, out=target, mode="clip")
                if store is not None:
                    for line in indices:
                        store.remember(line, colours)
            else:
                for k, line in enumerate(target):
                    store.draw(start + k, line)
            done += n
    if runs:
        raise ValueError("palette row runs beyond the rectangles")
    return rects


def _inflated(payload: bytes, start: int, store: RowStore | None) -> bytes:
    """The frame's data: a zlib stream of its own, or the next part of the row cache's."""
    try:
        if store is None:
            return zlib.decompress(payload[start:])
        if not store.synced:
            raise ValueError("palette frame goes on from a frame this terminal lost")
        data = store.inflater.decompress(payload[start:])
    except zlib.error as exc:
        raise ValueError(f"palette indices do not inflate: {exc}") from exc
    (size,) = COUNT.unpack_from(payload, start - COUNT.size)
    if len(data) != size:
        raise ValueError(f"palette frame inflates to {len(data)} bytes, not {size}")
    return data


def _indices(
    data: bytes, offset: int, h: int, w: int, bits: int, top: int
) -> tuple[NDArray[np.uint8], int]:
    """A run of `h` rows of `w` indices from `data` at `offset` (bands of 8 // bits rows, a
    byte per column), and the offset after them."""
    per_byte = 8 // bits
    bands = -(-h // per_byte)
    if len(data) < offset + bands * w:
        raise ValueError("palette frame cut short")
    packed = np.frombuffer(data, np.uint8, bands * w, offset).reshape(bands, 1, w)
    shifts = np.array([8 - bits * (s + 1) for s in range(per_byte)], np.uint8)
    spread = (packed >> shifts[None, :, None]) & np.uint8((1 << bits) - 1)
    indices = spread.reshape(bands * per_byte, w)[:h]
    if indices.max(initial=0) > top:
        raise ValueError("palette index beyond the colours")
    return indices, offset + bands * w
