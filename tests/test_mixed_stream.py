"""The mixed stream (media/mixed.py) end to end without a session: a text screen with a
photo-like patch, encoded as the streamer does and drawn by the Python terminal's decoder.
Text tiles arrive exactly and stay exact while H.264 carries the patch beside them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media import mixed
from openfrp.media.changes import TILE, changed_tiles
from openfrp.media.encoder import H264Encoder
from openfrp.media.mixed import (
    FEW_IN_SAMPLE,
    NARROWER,
    REFINE_GROUPS,
    RETRY_AFTER,
    SHARED_COLOURS,
    MixedCanvas,
    few_colour_tiles,
    pack_regions,
    split_regions,
    tile_samples,
)
from openfrp.media.streamer import REFINE_FRAMES
from openfrp.media.wire import (
    CODEC_H264,
    CODEC_PALETTE,
    FLAG_KEY,
    FLAG_MORE,
    FLAG_TILES,
    pack_frame,
)
from openfrp.terminal.video import VideoReceiver
from tests.test_stream_media import text_picture
from tests.test_terminal_video import Reports

W, H = 640, 360
PATCH = (slice(128, 256), slice(384, 512))  # tiles (2..3, 6..7)


def with_patch(seed: int) -> np.ndarray[Any, Any]:
    screen = text_picture(W, H)
    screen[:, W * 3 // 4 :, :3] = 255  # text and white only
    screen[PATCH] = np.random.default_rng(seed).integers(0, 256, (128, 128, 4), dtype=np.uint8)
    return screen


class Terminal:
    def __init__(self) -> None:
        self.reports = Reports()
        self.video = VideoReceiver(self.reports)
        self.number = 0

    def send(self, frames: list[Any]) -> list[tuple[int, int]]:
        sent = []
        for frame in frames:
            self.number += 1
            data = pack_frame(self.number, W, H, frame.codec, frame.flags, frame.payload)
            self.video.feed(data)
            sent.append((frame.codec, frame.flags))
        self.video.drain(5)
        return sent

    def picture(self) -> np.ndarray[Any, Any]:
        rgb = self.video.picture()
        assert rgb is not None
        return rgb


@pytest.fixture
def terminal() -> Any:
    term = Terminal()
    yield term
    term.video.close()


def test_text_stays_exact_beside_a_patch_that_goes_as_h264(terminal: Terminal) -> None:
    encoder = H264Encoder(W, H, 2_000_000)
    first = with_patch(1)
    canvas = MixedCanvas(changed_tiles(None, first))
    sent = terminal.send(canvas.encode(encoder, first, changed_tiles(None, first), True, False))
    assert sent == [(CODEC_PALETTE, FLAG_KEY | FLAG_MORE), (CODEC_H264, FLAG_TILES | FLAG_KEY)]
    assert terminal.video.frames == 1  # one picture, in two frames
    assert np.argwhere(canvas.lossy).tolist() == [[2, 6], [2, 7], [3, 6], [3, 7]]
    shown, truth = terminal.picture(), first[:, :, 2::-1]
    outside = np.ones((H, W), bool)
    outside[PATCH] = False
    assert np.array_equal(shown[outside], truth[outside])  # every pixel of the text
    assert np.abs(shown[PATCH].astype(int) - truth[PATCH]).mean() < 60  # the patch, lossy

    second = with_patch(2)  # the patch moves on, the text does not
    second[20:30, 10:60, :3] = 0  # and one line of text changes
    changed = changed_tiles(first, second)
    sent = terminal.send(canvas.encode(encoder, second, changed, False, False))
    assert sent == [(CODEC_PALETTE, FLAG_MORE), (CODEC_H264, FLAG_TILES)]
    assert terminal.video.frames == 2
    shown, truth = terminal.picture(), second[:, :, 2::-1]
    assert np.array_equal(shown[outside], truth[outside])

    refine = list(canvas.encode(encoder, second, np.zeros_like(changed), False, True))
    assert [(f.codec, split_regions(f.payload)[0]) for f in refine] == [
        (CODEC_H264, [(384, 128, 128, 64), (384, 192, 128, 64)])  # the patch's tile rows
    ]
    assert terminal.reports.of("keyframe") == []


def test_a_text_screen_is_all_palette_and_a_key_after_it_restarts_h264() -> None:
    encoder = H264Encoder(W, H, 2_000_000)
    text = text_picture(W, H)
    canvas = MixedCanvas(changed_tiles(None, text))
    frames = list(canvas.encode(encoder, text, changed_tiles(None, text), True, False))
    assert [(f.codec, f.flags) for f in frames] == [(CODEC_PALETTE, FLAG_KEY)]
    assert not canvas.lossy.any() and canvas.h264_key
    photo = with_patch(3)
    frames = list(canvas.encode(encoder, photo, changed_tiles(text, photo), False, False))
    assert frames[-1].codec == CODEC_H264 and frames[-1].flags == FLAG_TILES | FLAG_KEY


def test_a_cut_tiles_payload_is_a_value_error() -> None:
    payload = pack_regions([(0, 0, 64, 64), (64, 0, 64, 64)], b"\0\0\0\1unit")
    assert split_regions(payload) == ([(0, 0, 64, 64), (64, 0, 64, 64)], b"\0\0\0\1unit")
    for cut in (b"", b"\0", payload[:9]):
        with pytest.raises(ValueError):
            split_regions(cut)


def test_palette_tiles_leave_before_h264_encodes() -> None:
    """Text beside a video is on its way while the video's tiles are still being encoded."""
    encoded: list[bool] = []

    class Recording(H264Encoder):
        def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
            encoded.append(key)
            return super().encode(pixels, key)

    first = with_patch(1)
    canvas = MixedCanvas(changed_tiles(None, first))
    frames = canvas.encode(
        Recording(W, H, 2_000_000), first, changed_tiles(None, first), True, False
    )
    assert next(frames).codec == CODEC_PALETTE and encoded == []
    assert next(frames).codec == CODEC_H264 and encoded == [True]
    assert next(frames, None) is None


def test_the_glance_at_a_tile_rules_out_only_what_the_full_count_would() -> None:
    """few_colour_tiles sorts in full only the tiles an eighth of their sample leaves in
    doubt; it picks exactly the tiles that sorting every tile in full picks."""

    def every_tile_sorted(pixels: NDArray[np.uint8], tiles: NDArray[np.bool_]) -> NDArray[np.bool_]:
        every = np.ones_like(tiles)
        ordered = np.sort(tile_samples(pixels, every).reshape(*tiles.shape, -1), axis=2)
        counts = 1 + np.count_nonzero(np.diff(ordered, axis=2), axis=2)
        few, union = np.zeros_like(tiles), set[int]()
        candidates = np.argwhere(tiles & (counts <= FEW_IN_SAMPLE)).tolist()
        for row, column in sorted(candidates, key=lambda at: counts[at[0], at[1]]):
            colours = union.union(np.unique(ordered[row, column]).tolist())
            if len(colours) <= SHARED_COLOURS:
                union, few[row, column] = colours, True
        return few

    rng = np.random.default_rng(5)
    for k in range(6):
        picture = text_picture(640, 360, seed=k)
        picture[200:, :256, :3] = rng.integers(0, 256, (160, 256, 3))  # a photo
        for column, palette in zip(range(256, 640, 64), (40, 60, 64, 66, 70, 128), strict=True):
            shades = rng.integers(0, palette, (64, 64)) * 3  # tiles about FEW_IN_SAMPLE colours
            picture[64:128, column : column + 64, 0] = shades
        tiles = rng.random((6, 10)) < 0.9
        assert np.array_equal(few_colour_tiles(picture, tiles), every_tile_sorted(picture, tiles))


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each colour count encode makes: whether it found a palette."""
    counts: list[bool] = []
    real = mixed.encode_palette

    def counted(*args: Any) -> bytes | None:
        payload = real(*args)
        counts.append(payload is not None)
        return payload

    monkeypatch.setattr(mixed, "encode_palette", counted)
    return counts


def test_a_count_that_found_a_video_rests_and_text_stays_exact(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a patch of noise moves, counting every changed tile as one palette fails each
    frame: it is made once in RETRY_AFTER + 1 frames; the text beside it still goes exact."""
    assert RETRY_AFTER >= 4  # a rest long enough to pay (a count that succeeds takes none)
    counts = _counting(monkeypatch)
    encoder = H264Encoder(W, H, 2_000_000)
    before = with_patch(0)
    canvas = MixedCanvas(changed_tiles(None, before))
    terminal.send(canvas.encode(encoder, before, changed_tiles(None, before), True, False))
    assert counts == [False, True]  # all tiles (the noise's many colours), then the text's
    outside = np.ones((H, W), bool)
    outside[PATCH] = False
    for n in range(1, RETRY_AFTER + 2):
        counts.clear()
        screen = with_patch(n)
        screen[20:30, 10 + n : 60, :3] = 0  # a line of text changes too
        sent = terminal.send(
            canvas.encode(encoder, screen, changed_tiles(before, screen), False, False)
        )
        assert sent == [(CODEC_PALETTE, FLAG_MORE), (CODEC_H264, FLAG_TILES)]
        assert counts == ([False, True] if n == RETRY_AFTER + 1 else [True])
        assert np.array_equal(terminal.picture()[outside], screen[:, :, 2::-1][outside])
        before = screen
    counts.clear()
    text = before.copy()
    text[40:50, 10:60, :3] = 0  # the noise stops; only text changes, the whole count resting
    sent = terminal.send(canvas.encode(encoder, text, changed_tiles(before, text), False, False))
    assert sent == [(CODEC_PALETTE, 0)] and counts == [True]  # no empty H.264 frame
    assert np.array_equal(terminal.picture()[outside], text[:, :, 2::-1][outside])


def test_tiles_that_only_looked_few_coloured_are_not_counted_again_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tiles whose sample shows few colours but whose every pixel shows many (the soft edges
    of a scaled video) fail the full count: it rests RETRY_AFTER frames, and they go as H.264."""
    counts = _counting(monkeypatch)
    encoder = H264Encoder(W, H, 2_000_000)
    canvas = MixedCanvas(np.ones((H // 64 + 1, W // 64), np.bool_))
    rng = np.random.default_rng(5)
    for n in range(RETRY_AFTER + 2):
        counts.clear()
        screen = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
        screen[::2, ::2, :3] = 8 * (n % 4)  # the sampled pixels: one colour
        frames = list(canvas.encode(encoder, screen, np.ones_like(canvas.lossy), n == 0, False))
        assert [f.codec for f in frames] == [CODEC_H264]
        # all tiles, then the few-coloured ones at 64, 16 and 4 sampled colours a tile
        assert counts == ([False] * 4 if n in (0, RETRY_AFTER + 1) else [])


def soft_edges(seed: int) -> np.ndarray[Any, Any]:
    """Text, and beside it (tile columns 6-9) tiles whose sample shows 32 colours but whose
    every pixel shows hundreds: what a video window's edge looks like to the sample."""
    screen = text_picture(W, H, seed=seed)
    rng = np.random.default_rng(seed)
    screen[:, 384:] = rng.integers(0, 256, (H, W - 384, 4), dtype=np.uint8)
    screen[::2, 384::2, :3] = (rng.integers(0, 32, (H // 2, (W - 384) // 2, 1)) * 8).astype(
        np.uint8
    )
    return screen


def test_text_beside_tiles_that_only_look_few_coloured_still_goes_exact(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted with the tiles a video's edge cuts, text found too many colours and went as
    H.264 (9 fps at the bitrate's ceiling); the count is made again over tiles of fewer
    sampled colours, and that limit is kept for the frames after."""
    counts = _counting(monkeypatch)
    encoder = H264Encoder(W, H, 2_000_000)
    before = soft_edges(0)
    canvas = MixedCanvas(changed_tiles(None, before))
    sent = terminal.send(canvas.encode(encoder, before, changed_tiles(None, before), True, False))
    assert sent == [(CODEC_PALETTE, FLAG_KEY | FLAG_MORE), (CODEC_H264, FLAG_TILES | FLAG_KEY)]
    assert counts == [False, False, True]  # all tiles; at 64 sampled colours; at 16
    assert canvas.few_limit == FEW_IN_SAMPLE // NARROWER
    text = (slice(None), slice(0, 384))
    assert np.array_equal(terminal.picture()[text], before[:, :, 2::-1][text])
    counts.clear()
    after = soft_edges(1)
    sent = terminal.send(canvas.encode(encoder, after, changed_tiles(before, after), False, False))
    assert sent == [(CODEC_PALETTE, FLAG_MORE), (CODEC_H264, FLAG_TILES)]
    assert counts == [True]  # the whole count rests, the narrowed limit holds
    assert np.array_equal(terminal.picture()[text], after[:, :, 2::-1][text])


def antialiased_text(seed: int) -> NDArray[np.uint8]:
    """Text as Xft draws it: each band of tiles a colour blended into white at up to 150
    levels, so a tile holds at most 150 colours and the screen some 900."""
    rng = np.random.default_rng(seed)
    screen = np.full((H, W, 4), 255, np.uint8)
    for top in range(0, H, TILE):
        alpha = rng.integers(0, 150, (min(TILE, H - top), W, 1)) / 149
        colour = rng.integers(0, 200, 3)
        screen[top : top + TILE, :, :3] = np.round(255 - alpha * (255 - colour)).astype(np.uint8)
    return screen


def test_a_still_screen_of_antialiased_text_ends_exact(terminal: Terminal) -> None:
    encoder = H264Encoder(W, H, 2_000_000)
    screen = antialiased_text(3)
    canvas = MixedCanvas(changed_tiles(None, screen))
    terminal.send(list(canvas.encode(encoder, screen, changed_tiles(None, screen), True, False)))
    assert canvas.lossy.all()  # too many colours for one palette, and none look few
    for _ in range(REFINE_FRAMES):
        still = np.zeros_like(canvas.lossy)
        sent = terminal.send(list(canvas.encode(encoder, screen, still, False, True)))
        assert len(sent) <= REFINE_GROUPS + 1  # a pass's palette frames, then H.264's
        if not canvas.lossy.any():
            break
    assert not canvas.lossy.any()
    assert np.array_equal(terminal.picture(), screen[:, :, 2::-1])
