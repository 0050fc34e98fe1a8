"""The row cache of palette frames: pixel rows the terminal drew lately, sent again as ids.

Text comes back: a page scrolled back, a window raised again, a listing printed twice, the
blank and ruled rows between lines. Both ends remember every row a palette frame drew in the
order it was drawn and forget the oldest past ROW_PIXELS (the same rule on both sides, so an
id names the same row at both ends); a row the terminal still holds travels as its id
instead of its indices. The encoder keys rows by a 64-bit hash of their pixels up to the
trailing run of one colour, and that colour: a line of text is the same row in a rectangle
of any width (the changed tiles of a terminal end where its longest line does), and the
terminal cuts a remembered row to the width asked or extends it with its last colour.

The cache starts over with every keyframe: the encoder's next palette frame says so
(RESET), and a terminal that missed a frame ignores the cache until it sees that flag.

Runs of consecutive ids are what makes a cached page cheap, so the encoder keeps a page's ids
in order: the blank rows between lines of new text are drawn again with them (they are
known, but an old id there would cut the page into three runs a line), and each row takes
the id after the previous row's when that is the same row. The terminal needs none of this:
it draws whatever ids it is sent.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from abc import ABC, abstractmethod
from collections import deque

import numpy as np
from numpy.typing import NDArray

ROW_PIXELS = 48_000_000  # about 52 screens at 1280x720; a byte each (an index) at the terminal
RUN = struct.Struct("!IH")  # the first row's id (or LITERAL), how many rows
LITERAL = 0xFFFFFFFF  # a run of rows sent as indices, each then remembered
SEAM = 8  # at most this many known rows between new ones are drawn again (_seams)
ID_LIMIT = LITERAL - 65536  # ids start over (RESET) before a frame's rows could reach LITERAL


class _Ring(ABC):
    """Row ids in the order they were first drawn, the oldest forgotten past ROW_PIXELS."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.next_id = 0
        self._order: deque[tuple[int, int]] = deque()
        self._pixels = 0

    def _remember(self, width: int) -> int:
        row_id, self.next_id = self.next_id, self.next_id + 1
        self._order.append((row_id, width))
        self._pixels += width
        while self._pixels > ROW_PIXELS:
            old, old_width = self._order.popleft()
            self._pixels -= old_width
            self._forget(old)
        return row_id

    @abstractmethod
    def _forget(self, row_id: int) -> None: ...


class RowIndex(_Ring):
    """The encoder's side: which rows the terminal holds, by the hash of their pixels."""

    def reset(self) -> None:
        super().reset()
        self._ids: dict[int, int] = {}
        self._keys: dict[int, int] = {}
        self._deflate: zlib._Compress | None = None
        self.fresh = True  # the next palette frame tells the terminal to start over

    def deflate(self, level: int) -> zlib._Compress:
        """The deflate stream palette frames share until the cache starts over."""
        if self._deflate is None:
            self._deflate = zlib.compressobj(level)
        return self._deflate

    def begin(self) -> bool:
        """Start a frame; True when it must tell the terminal to start over (after a
        keyframe, or when ids near their 32 bits: 55 hours of scrolling without a keyframe)."""
        if not self.fresh and self.next_id <= ID_LIMIT:
            return False
        self.reset()
        self.fresh = False
        return True

    def _forget(self, row_id: int) -> None:
        key = self._keys.pop(row_id)
        if self._ids.get(key) == row_id:  # else the row was drawn again since
            del self._ids[key]

    def runs(self, part: NDArray[np.uint32]) -> list[tuple[int, int]]:
        """The runs that draw `part` row by row; the rows sent as indices (LITERAL runs) are
        remembered as the terminal will remember them."""
        width = part.shape[1]
        last = part[:, -1]
        differs = part != last[:, None]
        ends = np.where(differs.any(axis=1), width - np.argmax(differs[:, ::-1], axis=1), 0)
        data, size = part.tobytes(), part.itemsize
        starts = range(0, len(data), width * size)
        keys = [
            hash((data[start : start + end * size], colour))
            for start, end, colour in zip(starts, ends.tolist(), last.tolist(), strict=True)
        ]
        literal = _seams(np.array([key not in self._ids for key in keys], np.bool_))
        ids: list[int] = []
        for row, key in enumerate(keys):
            row_id = LITERAL if literal[row] else self._held(key, ids[-1] if ids else LITERAL)
            if row_id == LITERAL:
                new_id = self._remember(width)
                self._ids[key], self._keys[new_id] = new_id, key
            ids.append(row_id)
        for row in range(len(ids) - 2, -1, -1):  # a run reaches back to the rows before it
            after = ids[row + 1]
            if LITERAL != ids[row] != after - 1 and self._keys.get(after - 1) == keys[row]:
                ids[row] = after - 1
        return _runs(ids)

    def _held(self, key: int, previous: int) -> int:
        """The id of a row the terminal holds: the one after the previous row's when that
        is this row (a page goes on as it was first drawn), else the latest; else LITERAL."""
        if previous != LITERAL and self._keys.get(previous + 1) == key:
            return previous + 1
        return self._ids.get(key, LITERAL)


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Row ids as runs of consecutive ids, and of LITERAL rows."""
    found: list[tuple[int, int]] = []
    for row_id in ids:
        if found and found[-1][0] == LITERAL == row_id:
            found[-1] = (LITERAL, found[-1][1] + 1)
        elif found and row_id != LITERAL and found[-1][0] + found[-1][1] == row_id:
            found[-1] = (found[-1][0], found[-1][1] + 1)
        else:
            found.append((row_id, 1))
    return found


def _seams(new: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The new rows, and up to SEAM known ones between two new ones or between a new one and
    the rectangle's edge (the blank rows around lines of new text): drawn again with them,
    they keep a page's rows in order, so the page comes back later as one run instead of
    three a line."""
    drawn = new.copy()
    at = np.flatnonzero(new)
    if len(at):
        for before, after in itertools.pairwise([-1, *at.tolist(), len(new)]):
            if after - before <= SEAM + 1:
                drawn[before + 1 : after] = True
    return drawn


Row = tuple[NDArray[np.uint8], NDArray[np.uint8]]  # indices, and the colours they index


class RowStore(_Ring):
    """The terminal's side: the rows themselves, as indices into their frame's colours."""

    def reset(self) -> None:
        super().reset()
        self._rows: dict[int, Row] = {}
        self.inflater = zlib.decompressobj()
        self.synced = True

    def lose(self) -> None:
        """A frame went missing: the cache is unusable until the encoder starts it over."""
        self.reset()
        self.synced = False

    def _forget(self, row_id: int) -> None:
        del self._rows[row_id]

    def remember(self, indices: NDArray[np.uint8], colours: NDArray[np.uint8]) -> None:
        if self.synced:
            self._rows[self._remember(len(indices))] = (indices, colours)

    def draw(self, row_id: int, line: NDArray[np.uint8]) -> None:
        """Draw the row's first pixels into `line` (RGB, its width), extended with its last
        colour if short. Taken into `line` directly: looking the indices up in a copy and
        copying that cost three times as much, most of a scrolling page's decoding."""
        found = self._rows.get(row_id) if self.synced else None
        if found is None:
            raise ValueError(f"palette frame refers to row {row_id}, which this terminal lacks")
        indices, colours = found
        width = len(line)
        if not len(indices) and width:
            raise ValueError(f"palette frame extends row {row_id}, which is empty")
        if len(indices) >= width:
            np.take(colours, indices[:width], axis=0, out=line, mode="clip")
            return
        np.take(colours, indices, axis=0, out=line[: len(indices)], mode="clip")
        line[len(indices) :] = colours[indices[-1]]
