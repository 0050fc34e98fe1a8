"""The stream's parts without a session: change detection, libx264 as configured (bitrate
changes that take effect, the refinement of a still picture), and the rate policy on a fake
clock."""

from __future__ import annotations

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media.changes import changed_tiles
from openfrp.media.encoder import H264Encoder, choose_codec
from openfrp.media.rate import RateControl
from openfrp.media.streamer import REFINE_BOOST, REFINE_FRAMES, REST_BITRATE, max_bitrate


def text_picture(width: int = 640, height: int = 360, seed: int = 3) -> NDArray[np.uint8]:
    """A terminal-like picture: lines of dark glyph-like dots on white, of random lengths,
    beside a coloured panel."""
    rng = np.random.default_rng(seed)
    picture = np.full((height, width, 4), 255, np.uint8)
    picture[:, width * 3 // 4 :, :3] = (120, 60, 30)
    for y in range(4, height - 12, 14):
        for x in range(4, int(rng.integers(40, width * 3 // 4 - 8)), 7):
            glyph = rng.random((9, 5)) < 0.3
            picture[y : y + 9, x : x + 5, :3][glyph] = 40
    return picture


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


class Decoded:
    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("h264", "r")

    def __call__(self, payload: bytes) -> NDArray[np.uint8]:
        frames = self.decoder.decode(av.Packet(payload))
        assert len(frames) == 1
        return frames[0].to_ndarray(format="bgr24")


def test_changed_tiles_finds_the_changed_64px_tiles() -> None:
    before = text_picture(200, 130)
    assert changed_tiles(None, before).all() and changed_tiles(None, before).shape == (3, 4)
    assert not changed_tiles(before, before.copy()).any()
    after = before.copy()
    after[129, 199, 0] ^= 1  # the last pixel, in a partial tile
    after[70, 10, 2] ^= 1
    assert np.argwhere(changed_tiles(before, after)).tolist() == [[1, 0], [2, 3]]


@pytest.mark.parametrize("size", [(200, 130), (199, 131), (333, 64), (1, 1)])
def test_changed_tiles_sees_each_changed_pixel_and_no_other_tile(size: tuple[int, int]) -> None:
    width, height = size
    rng = np.random.default_rng(width)
    before = rng.integers(0, 256, (height, width, 4), np.uint8)
    for _ in range(20):
        after = before.copy()
        for y, x in zip(rng.integers(0, height, 3), rng.integers(0, width, 3), strict=True):
            after[y, x, rng.integers(0, 3)] ^= 1 << int(rng.integers(0, 8))
        want = np.zeros((-(-height // 64), -(-width // 64)), np.bool_)
        for y, x in np.argwhere((before != after).any(axis=2)):
            want[y // 64, x // 64] = True
        assert np.array_equal(changed_tiles(before, after), want)


def test_h264_keyframe_decodes_to_the_picture_and_a_still_one_costs_bytes() -> None:
    picture = text_picture()
    encoder = H264Encoder(640, 360, max_bitrate(640, 360), 30)
    decode = Decoded()
    payload, key = encoder.encode(picture, True)
    assert key and payload.startswith(b"\0\0\0\x01\x67\x42")  # Annex B, SPS, baseline
    first = decode(payload)
    assert first.shape == (360, 640, 3)
    encoder.set_bitrate(REST_BITRATE)  # as the stream does once a still screen is refined
    sizes = []
    for _ in range(10):
        same, key = encoder.encode(picture, False)
        assert not key
        sizes.append(len(same))
        decode(same)
    assert sorted(sizes)[5] < 100, sizes  # nothing changed: mostly skipped macroblocks


def test_refinement_at_a_raised_bitrate_sharpens_a_still_picture() -> None:
    picture = text_picture()
    # The best H.264 4:2:0 can do: the picture through the same colour conversion.
    best = av.VideoFrame.from_ndarray(picture, format="bgra").reformat(format="yuv420p")
    reference = best.to_ndarray(format="bgr24")
    rate = max_bitrate(640, 360)
    encoder = H264Encoder(640, 360, rate, 30)
    decode = Decoded()
    before = psnr(reference, decode(encoder.encode(picture, True)[0]))
    encoder.set_bitrate(rate * REFINE_BOOST)
    refined = [decode(encoder.encode(picture, False)[0]) for _ in range(REFINE_FRAMES)]
    after = psnr(reference, refined[-1])
    assert after >= before + 1.0, (before, after)


def test_a_lower_bitrate_takes_effect_between_frames() -> None:
    rate = max_bitrate(640, 360)
    picture = text_picture()

    def scroll(encoder: H264Encoder, frames: int) -> int:
        total = 0
        moving = picture
        for _ in range(frames):
            moving = np.roll(moving, 12, axis=0)
            total += len(encoder.encode(moving, False)[0])
        return total

    # (At the lowest rates the quality floor, QP 36, wins over the bitrate: text stays legible.)
    full = H264Encoder(640, 360, rate * 4, 30)
    full.encode(picture, True)
    lowered = H264Encoder(640, 360, rate * 4, 30)
    lowered.encode(picture, True)
    lowered.set_bitrate(rate)
    assert scroll(lowered, 30) < 0.6 * scroll(full, 30)


def test_codec_choice_follows_the_terminal() -> None:
    assert choose_codec(["h264", "jpeg"]) == "h264"
    assert choose_codec(["vp8", "jpeg"]) == "jpeg"  # VP8 is the FRP8 track's, not FRP7's
    assert choose_codec(None) == "rgb-zlib"  # a terminal that names none draws rgb-zlib


def test_the_bitrate_is_a_budget_frames_wait_for() -> None:
    rate = RateControl(max_bitrate=1_000_000, max_fps=30)
    assert rate.allow(0)
    rate.sent(1, 150_000, 0)  # 1.2 Mbit: more than the second of budget there was
    assert not rate.allow(0) and not rate.allow(150)
    assert rate.allow(250)  # a quarter of a second later the debt is paid
    rate.sent(2, 1000, 250)
    assert rate.allow(250)


def test_exact_frames_take_their_share_of_the_budget_from_the_video_encoder() -> None:
    rate = RateControl(max_bitrate=2_000_000, max_fps=30)
    assert rate.video_bitrate(0) == 2_000_000
    for k in range(10):  # 10 palette frames of 5,000 bytes: 400 kbit in the last second
        rate.sent(k, 5_000, k * 100, exact=True)
    rate.sent(10, 9_000, 950)  # video frames are the encoder's own
    assert rate.video_bitrate(950) == 1_600_000
    assert rate.video_bitrate(1_450) == 2_000_000 - 8 * 5_000 * 5  # the first five aged out
    assert rate.video_bitrate(2_000) == 2_000_000
    for k in range(11, 100):
        rate.sent(k, 50_000, 2_000, exact=True)
    assert rate.video_bitrate(2_000) == rate.min_bitrate  # never below the floor


def test_rate_control_lowers_bitrate_then_fps_when_acks_lag_and_recovers() -> None:
    rate = RateControl(max_bitrate=2_000_000, max_fps=30)
    now, frame = 0, 0
    pending: list[tuple[int, int]] = []  # (when its ack arrives, frame)

    def run(seconds: float, delay: int, size: int = 8000) -> None:
        """Send at the policy's frame rate; each ack arrives `delay` ms later (10 ms ticks)."""
        nonlocal now, frame
        end, next_frame = now + int(seconds * 1000), now
        while now < end:
            if now >= next_frame:
                frame += 1
                rate.sent(frame, size, now)
                pending.append((now + delay, frame))
                next_frame = now + 1000 // rate.fps
            for due, number in [p for p in pending if p[0] <= now]:
                rate.acked(number, now)
                pending.remove((due, number))
            rate.update(now)
            now += 10

    run(3, delay=20)  # a good path: nothing moves
    assert (rate.bitrate, rate.fps) == (2_000_000, 30)
    run(1.5, delay=900)  # acknowledgements come late: bitrate first ...
    assert rate.bitrate < 2_000_000 and rate.fps == 30
    run(10, delay=900)  # ... down to its floor, then the frame rate
    assert rate.bitrate == rate.min_bitrate and rate.fps < 30
    run(12, delay=20)  # the path is back: frame rate first, then bitrate, carefully
    assert rate.fps == 30 and rate.min_bitrate < rate.bitrate < 2_000_000
    rate.reset(now)  # a new connection has seen no lag: it climbs fast
    run(2.5, delay=20)
    assert rate.bitrate == 2_000_000


def test_a_frame_never_acknowledged_does_not_read_as_a_lagging_path() -> None:
    rate = RateControl(max_bitrate=2_000_000, max_fps=30)
    for frame in range(1, 4):
        rate.sent(frame, 8000, frame * 30)
    for now in range(100, 3000, 30):  # frame 1 never comes back; 2 and 3 are acknowledged
        if now == 130:
            rate.acked(2, now)
            rate.acked(3, now)
        rate.update(now)
    assert (rate.bitrate, rate.fps) == (2_000_000, 30)
