"""Palette frames (media/palette.py): exact round trips at each index width, the tiles they
carry, the size of a screen of text against H.264's, and payloads that do not fit."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media.changes import changed_tiles
from openfrp.media.encoder import H264Encoder
from openfrp.media.palette import (
    BANDS,
    HEAD,
    _lookup,
    _table,
    decode_palette,
    encode_palette,
    rectangles,
)
from tests.test_stream_media import text_picture


def coloured(colours: int, height: int = 100, width: int = 130) -> NDArray[np.uint8]:
    rng = np.random.default_rng(colours)
    table = rng.integers(0, 256, (colours, 4), dtype=np.uint8)
    table = np.unique(table[:, :3], axis=0)
    while len(table) < colours:  # random colours may repeat: top up with distinct greys
        table = np.unique(np.vstack([table, [[len(table)] * 3]]), axis=0)
    picture = np.zeros((height, width, 4), np.uint8)
    picture[:, :, :3] = table[rng.integers(0, colours, (height, width))]
    return picture


@pytest.mark.parametrize(("colours", "bits"), [(1, 1), (2, 1), (3, 2), (4, 2), (16, 4), (256, 8)])
def test_a_picture_of_few_colours_comes_back_exactly(colours: int, bits: int) -> None:
    picture = coloured(colours)
    payload = encode_palette(picture, changed_tiles(None, picture))
    assert payload is not None and HEAD.unpack_from(payload)[:2] == (bits | BANDS, colours - 1)
    drawn = np.zeros((100, 130, 3), np.uint8)
    decode_palette(payload, drawn)
    assert np.array_equal(drawn, picture[:, :, 2::-1])


@pytest.mark.parametrize("count", [1, 2, 200, 256])
def test_the_colour_table_finds_what_a_binary_search_finds(count: int) -> None:
    rng = np.random.default_rng(count)
    colours = np.unique(rng.integers(0, 1 << 24, count * 2, np.uint32))[:count]
    part = colours[rng.integers(0, count, (64, 90))]
    part[5, 7:9] = (1 << 24) - 1 - colours[:2] % 5  # two colours that are not among them
    stray = ~np.isin(part, colours)
    table = _table(colours)
    assert table is not None
    for found, missed in (_lookup(colours, table, part), _lookup(colours, None, part)):
        assert np.array_equal(found[~stray], np.searchsorted(colours, part[~stray]))
        assert np.array_equal(missed, part[stray])


def test_more_than_256_colours_are_left_to_h264() -> None:
    picture = coloured(257)
    assert encode_palette(picture, changed_tiles(None, picture)) is None
    rare = coloured(2, 256, 256)
    rare[255, 255, :3] = (1, 2, 3)  # a colour the sampled pixels miss
    payload = encode_palette(rare, changed_tiles(None, rare))
    assert payload is not None and HEAD.unpack_from(payload)[1] == 2


def test_only_the_changed_tiles_travel_and_the_rest_is_left_alone() -> None:
    before = text_picture()
    after = before.copy()
    after[70:80, 200:330, :3] = 0  # across tiles (1, 3) to (1, 5)
    mask = changed_tiles(before, after)
    assert rectangles(mask, 640, 360) == [(192, 64, 192, 64)]
    drawn = np.ascontiguousarray(before[:, :, 2::-1])
    payload = encode_palette(after, mask)
    assert payload is not None
    decode_palette(payload, drawn)
    assert np.array_equal(drawn, after[:, :, 2::-1])
    edge = rectangles(np.ones((6, 10), np.bool_), 640, 360)
    assert edge[-1] == (0, 320, 640, 40)  # the last tile row is cut to the screen


def test_a_screen_of_text_is_smaller_than_h264_and_exact() -> None:
    picture = text_picture(1280, 720)
    picture[:, 960:, :3] = 255  # text only: the panel goes
    payload = encode_palette(picture, changed_tiles(None, picture))
    h264, _ = H264Encoder(1280, 720, 1_840_000).encode(picture, True)
    assert payload is not None and len(payload) < len(h264) / 2, (len(payload), len(h264))


def test_a_glyph_is_the_same_bytes_wherever_it_stands_on_its_line() -> None:
    """Indices go in bands of 8 // bits rows, a byte per column: a 6-pixel glyph drawn at
    x 0 and x 6 is the same 6 bytes, where rows of packed bits would shift it in its bytes."""
    picture = np.full((13, 64, 4), 255, np.uint8)
    glyph = np.random.default_rng(3).integers(0, 2, (13, 6)).astype(bool)
    for x in (0, 6):
        picture[:13, x : x + 6][glyph] = (0, 0, 0, 0)
    payload = encode_palette(picture, changed_tiles(None, picture))
    assert payload is not None
    flags, top, count = HEAD.unpack_from(payload)
    assert (flags, top, count) == (1 | BANDS, 1, 1)
    data = zlib.decompress(payload[HEAD.size + 2 * 3 + 8 :])
    assert len(data) == 2 * 64  # 13 rows in two bands of 8, the second padded
    bands = np.frombuffer(data, np.uint8).reshape(2, 64)
    assert np.array_equal(bands[:, 0:6], bands[:, 6:12])
    first_band_row_0 = (bands[0, :6] >> 7) & 1  # the first row in the top bit: black is 0
    assert np.array_equal(first_band_row_0, (~glyph[0]).astype(np.uint8))


def test_a_frame_without_bands_is_refused_with_its_reason() -> None:
    payload = HEAD.pack(1, 1, 1) + bytes(6) + b"\x00\x00\x00\x00\x00\x10\x00\x01"
    with pytest.raises(ValueError, match="without bands"):
        decode_palette(payload + zlib.compress(bytes(2)), np.zeros((10, 100, 3), np.uint8))


ONE_BIT, TWO_BITS = 1 | BANDS, 2 | BANDS


@pytest.mark.parametrize(
    "cut",
    [
        b"\x01",  # shorter than the header
        bytes([3 | BANDS, 0, 0, 0]),  # 3 bits per index
        HEAD.pack(ONE_BIT, 1, 1) + bytes(6) + bytes(4),  # a rectangle cut short
        HEAD.pack(ONE_BIT, 1, 1) + bytes(6) + b"\x00\x00\x00\x00\x00\x10\x00\x01" + b"junk",
        HEAD.pack(ONE_BIT, 1, 1)
        + bytes(6)
        + b"\x00\x60\x00\x00\x00\x10\x00\x01"
        + zlib.compress(bytes(16)),  # x 96 + 16 > 100
        HEAD.pack(TWO_BITS, 1, 1)
        + bytes(6)
        + b"\x00\x00\x00\x00\x00\x04\x00\x01"
        + zlib.compress(b"\xff" * 4),  # index 3 of 2 colours
        HEAD.pack(ONE_BIT, 0, 1)
        + bytes(3)
        + b"\x00\x00\x00\x00\x00\x10\x00\x09"
        + zlib.compress(bytes(16)),  # 9 rows take two bands, one sent
    ],
)
def test_a_payload_that_does_not_fit_is_a_value_error(cut: bytes) -> None:
    with pytest.raises(ValueError):
        decode_palette(cut, np.zeros((10, 100, 3), np.uint8))
