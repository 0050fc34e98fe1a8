"""Indexed-colour frames: the changed tiles of a screen of text, lossless and small.

Text on a desktop has few colours and sharp edges, which is what a video codec does worst: a
scrolling 1280x720 xterm costs H.264 about 24 KB a frame at a quality floor that already
blurs it, while the same picture as 1-bit indices with deflate is 7 KB and exact (the
approach of VNC's Tight encoding). So a terminal that draws `palette` gets the changed tiles
this way whenever they hold at most 256 colours, and H.264 only for pictures with more.

Payload: "!BBH" bits per index (1, 2, 4 or 8), colours - 1, rectangle count; the colours as
RGB triplets; each rectangle as "!HHHH" x, y, width, height; then one zlib stream of every
rectangle's indices, row by row, each row padded to a whole byte, most significant bits
first.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import TILE

HEAD = struct.Struct("!BBH")
RECT = struct.Struct("!HHHH")
MAX_COLOURS = 256
ZLIB_LEVEL = 6  # a scrolling 720p xterm: 4.6 KB a frame in 9 ms; level 9: 4.2 KB in 13 ms
SAMPLE = 4  # colours are first counted on every 4th pixel of every 4th row


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


def _colours(parts: list[NDArray[np.uint32]]) -> NDArray[np.uint32] | None:
    """The sorted colours of `parts`, or None when there are more than MAX_COLOURS."""
    sample = np.unique(np.concatenate([p[::SAMPLE, ::SAMPLE].ravel() for p in parts]))
    if len(sample) > MAX_COLOURS:
        return None
    for part in parts:  # a colour the sample missed: count them all
        at = np.minimum(np.searchsorted(sample, part), len(sample) - 1)
        if not np.array_equal(sample[at], part):
            every = np.unique(np.concatenate([p.ravel() for p in parts]))
            return every if len(every) <= MAX_COLOURS else None
    return sample


def _pack(indices: NDArray[np.uint8], bits: int) -> NDArray[np.uint8]:
    """Rows of indices packed `bits` to an index, most significant first, rows byte-padded."""
    if bits == 8:
        return indices
    per_byte = 8 // bits
    height, width = indices.shape
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
    padded[:, :width] = indices
    groups = padded.reshape(height, -1, per_byte)
    packed = np.zeros(groups.shape[:2], np.uint8)
    for slot in range(per_byte):
        packed |= groups[:, :, slot] << (8 - bits * (slot + 1))
    return packed


def encode_palette(pixels: NDArray[np.uint8], mask: NDArray[np.bool_]) -> bytes | None:
    """The payload for the tiles set in `mask` of a BGRX picture, or None when they hold
    more than 256 colours (a photo, a video: H.264's work)."""
    height, width = pixels.shape[:2]
    found = rectangles(mask, width, height)
    screen = pixels.view(np.uint32)[:, :, 0] & np.uint32(0xFFFFFF)
    parts = [screen[y : y + h, x : x + w] for x, y, w, h in found]
    colours = _colours(parts) if parts else np.zeros(1, np.uint32)
    if colours is None:
        return None
    bits = next(b for b in (1, 2, 4, 8) if len(colours) <= 1 << b)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    packer = zlib.compressobj(ZLIB_LEVEL)
    packed = (_pack(np.searchsorted(colours, p).astype(np.uint8), bits) for p in parts)
    body = [packer.compress(np.ascontiguousarray(p).data) for p in packed]
    head = HEAD.pack(bits, len(colours) - 1, len(found)) + rgb.astype(np.uint8).tobytes()
    return head + b"".join(RECT.pack(*r) for r in found) + b"".join(body) + packer.flush()


def decode_palette(payload: bytes, picture: NDArray[np.uint8]) -> None:
    """Draw a palette payload into an RGB (height, width, 3) picture; ValueError when the
    payload does not fit it."""
    if len(payload) < HEAD.size:
        raise ValueError("palette frame shorter than its header")
    bits, top, count = HEAD.unpack_from(payload)
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"palette frame with {bits} bits per index")
    at = HEAD.size + (top + 1) * 3
    rects_end = at + count * RECT.size
    if len(payload) < rects_end:
        raise ValueError("palette frame cut short")
    colours = np.frombuffer(payload, np.uint8, (top + 1) * 3, HEAD.size).reshape(-1, 3)
    rects = [RECT.unpack_from(payload, at + i * RECT.size) for i in range(count)]
    try:
        data = zlib.decompress(payload[rects_end:])
    except zlib.error as exc:
        raise ValueError(f"palette indices do not inflate: {exc}") from exc
    offset = 0
    per_byte = 8 // bits
    for x, y, w, h in rects:
        if x + w > picture.shape[1] or y + h > picture.shape[0]:
            raise ValueError(f"palette rectangle {w}x{h}+{x}+{y} outside the picture")
        row_bytes = -(-w // per_byte)
        packed = np.frombuffer(data, np.uint8, row_bytes * h, offset).reshape(h, row_bytes)
        offset += row_bytes * h
        if bits == 8:
            indices = packed
        else:
            shifts = np.array([8 - bits * (s + 1) for s in range(per_byte)], np.uint8)
            spread = (packed[:, :, None] >> shifts) & np.uint8((1 << bits) - 1)
            indices = spread.reshape(h, -1)[:, :w]
        if indices.max(initial=0) > top:
            raise ValueError("palette index beyond the colours")
        picture[y : y + h, x : x + w] = colours[indices]
