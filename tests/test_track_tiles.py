"""FRP8's pictures split as FRP7's: text as exact palette frames for the channel, the rest in
the track's picture, which keeps in the text's tiles what it carried before; the page's
acknowledgements bound what is in flight."""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray

from openfrp.media.changes import TILE
from openfrp.media.mixed import split_regions
from openfrp.media.palette import decode_palette
from openfrp.media.rows import RowStore
from openfrp.media.track import SHARPEN_S, DisplayTrack
from openfrp.media.track_tiles import FLIGHT, Split, TrackTiles, regions_frame
from openfrp.media.wire import (
    CODEC_PALETTE,
    CODEC_TRACK,
    FLAG_KEY,
    FLAG_MORE,
    HEADER,
    TRACK_TILES,
    parse_frame,
)

W, H = 256, 128


def text() -> NDArray[np.uint8]:
    """Black on white, with a few black bars of text: few colours (BGRX)."""
    pixels = np.full((H, W, 4), 255, np.uint8)
    for row in range(4, H - 8, 12):
        pixels[row : row + 6, 8 : W - 8 : 3] = 0
    return pixels


def photo(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The right half a gradient of many colours."""
    out = pixels.copy()
    ys, xs = np.mgrid[0:H, 0 : W // 2]
    out[:, W // 2 :, 0] = xs * 2
    out[:, W // 2 :, 1] = ys * 2
    out[:, W // 2 :, 2] = (xs + ys) % 256
    return out


def changes(tiles: TrackTiles, pixels: NDArray[np.uint8], video: bool) -> Split:
    changed = tiles.changed(pixels)
    assert changed is not None
    return tiles.split(pixels, changed, False, video)


def drawn(frames: list[bytes], picture: NDArray[np.uint8], rows: RowStore) -> list[int]:
    flags = []
    for data in frames:
        parsed = parse_frame(data)
        assert parsed is not None and parsed[0].codec == CODEC_PALETTE
        decode_palette(parsed[1], picture, rows)
        flags.append(parsed[0].flags)
    return flags


def test_text_goes_as_palette_frames_and_the_rest_in_the_track_picture() -> None:
    tiles, rows = TrackTiles(), RowStore()
    page = np.zeros((H, W, 3), np.uint8)
    first = text()
    split = changes(tiles, first, True)
    assert drawn(split.frames, page, rows) == [FLAG_KEY | FLAG_MORE]  # a track frame follows
    assert np.array_equal(page, first[:, :, 2::-1])  # exact
    assert split.video is not None and not split.regions  # the first frame, carrying no tile
    # Text alone changed: palette frames, no track frame.
    moved = np.roll(first, 12, axis=0)
    split = changes(tiles, moved, False)
    assert split.video is None and drawn(split.frames, page, rows) == [0]
    assert np.array_equal(page, moved[:, :, 2::-1])
    # A photo beside the text: the track brings the photo's tiles; the text's tiles keep what
    # the track carried before (the first picture), so the codec spends nothing there.
    mixed = photo(moved)
    split = changes(tiles, mixed, False)
    assert split.video is not None
    assert split.regions == [(W // 2, 0, W // 2, 64), (W // 2, 64, W // 2, 64)]
    assert np.array_equal(split.video[:, W // 2 :], mixed[:, W // 2 :])
    assert np.array_equal(split.video[:, : W // 2], first[:, : W // 2])
    assert tiles.lossy
    # The photo goes: its tiles come back as palette tiles, exact.
    split = changes(tiles, moved, False)
    assert split.video is None and not tiles.lossy
    drawn(split.frames, page, rows)
    assert np.array_equal(page, moved[:, :, 2::-1])


def test_the_page_bounds_the_pictures_in_flight_and_may_ask_for_all_of_it() -> None:
    tiles = TrackTiles()
    picture = text()
    for k in range(FLIGHT):
        assert not tiles.busy(0)
        picture = np.roll(picture, 12, axis=0)
        changed = tiles.changed(picture)
        assert changed is not None
        tiles.split(picture, changed, False, k == 0)
    assert tiles.busy(0) and tiles.changed(picture) is None
    tiles.acked(0)
    assert not tiles.busy(0) and tiles.busy(10**6)  # the channel's own buffer counts too
    tiles.ask()  # the page lost its palette stream: every tile again, as a keyframe
    changed = tiles.changed(picture)
    assert changed is not None and changed.all()
    split = tiles.split(picture, changed, False, False)
    header = HEADER.unpack_from(split.frames[0])
    assert header[0] == FLIGHT and header[4] & FLAG_KEY


def test_a_track_frame_names_its_rectangles_with_its_rtp_timestamp() -> None:
    data = regions_frame(0xFFFFFFF0, W, H, [(128, 0, 128, 64)])
    number, width, height, codec, flags = HEADER.unpack_from(data)
    assert (number, width, height, codec, flags) == (0xFFFFFFF0, W, H, CODEC_TRACK, 0)
    assert split_regions(data[HEADER.size :]) == ([(128, 0, 128, 64)], b"")


def test_a_new_size_sends_a_track_frame_and_a_keyframe_ask_one_of_the_picture() -> None:
    tiles = TrackTiles()
    changes(tiles, text(), True)
    assert tiles.sharpen(text(), False).video is None  # all exact: nothing to sharpen
    assert tiles.sharpen(text(), True).video is not None  # a keyframe asked for: the picture
    smaller = np.ascontiguousarray(text()[:64, :128])
    split = changes(tiles, smaller, False)  # all text, but the track must take the new size
    assert split.video is not None and split.video.shape == smaller.shape
    assert HEADER.unpack_from(split.frames[0])[4] & FLAG_KEY


def coloured_text(seed: int) -> NDArray[np.uint8]:
    """Antialiased text of a colour a tile, blended into white at up to 100 levels: two
    tiles fit a palette, so its 15 tiles take 8 palette frames."""
    rng = np.random.default_rng(seed)
    screen = np.full((3 * TILE, 5 * TILE, 4), 255, np.uint8)
    for top in range(0, 3 * TILE, TILE):
        for left in range(0, 5 * TILE, TILE):
            alpha = rng.integers(0, 100, (TILE, TILE, 1)) / 99
            colour = rng.integers(0, 200, 3)
            blend = np.round(255 - alpha * (255 - colour)).astype(np.uint8)
            screen[top : top + TILE, left : left + TILE, :3] = blend
    return screen


class Still:
    """A display whose screen never changes."""

    def __init__(self, pixels: NDArray[np.uint8]) -> None:
        self.pixels = pixels

    def grab(self) -> NDArray[np.uint8]:
        return self.pixels


def test_a_still_screen_of_antialiased_text_is_sharpened_until_exact() -> None:
    """A sharpening sends a few palettes (REFINE_GROUPS) and antialiased text takes more: the
    track sharpens again while a pass makes tiles exact (one pass left most of it blurred)."""
    screen = coloured_text(5)
    display = Still(screen)
    track = DisplayTrack(lambda: display)
    track.heard_hello([TRACK_TILES])
    page, rows = np.zeros((*screen.shape[:2], 3), np.uint8), RowStore()
    deadline = time.monotonic() + 2 + 8 * SHARPEN_S
    lossy = []
    while time.monotonic() < deadline:
        split = track._changed(display)
        assert isinstance(split, Split)
        track.frames += split.video is not None  # as recv() counts the frames it encodes
        drawn(split.frames, page, rows)
        if split.frames:
            assert track._tiles is not None
            lossy.append(track._tiles.lossy)
        if lossy and lossy[-1] == 0:
            break
        time.sleep(0.02)
    assert len(lossy) >= 2 and lossy[-1] == 0, lossy  # a pass of palettes, then another
    assert np.array_equal(page, screen[:, :, 2::-1])
