"""The hand-written VP8 repeat frame, checked by two decoders (libvpx, which Chromium and
aiortc use, and FFmpeg's own): it shows the last frame unchanged and leaves the decoder as it
was, so the encoder's next frames decode exactly as without it."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from av.packet import Packet
from av.video.frame import PictureType, VideoFrame
from numpy.typing import NDArray

from openfrp.media.vp8_repeat import repeat_frame
from tests.test_stream_media import text_picture


def encoded(pictures: list[NDArray[np.uint8]]) -> list[bytes]:
    """The pictures as aiortc's VP8 encoder codes them, 30 a second, the first a keyframe."""
    encoder = Vp8Encoder()
    start = VideoFrame.from_ndarray(pictures[0], format="bgra")
    start.pts, start.time_base = 0, Fraction(1, 90000)
    encoder.encode(start)  # opens the codec with aiortc's settings
    assert encoder.codec is not None
    frames = []
    for i, picture in enumerate(pictures, 1):
        frame = VideoFrame.from_ndarray(picture, format="bgra").reformat(format="yuv420p")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        if i == 1:
            frame.pict_type = PictureType.I
        frames.append(b"".join(bytes(p) for p in encoder.codec.encode(frame)))
    return frames


def decoded(decoder: str, frames: list[bytes]) -> list[NDArray[np.uint8]]:
    codec = av.CodecContext.create(decoder, "r")
    return [f.to_ndarray() for data in frames for f in codec.decode(Packet(data))]


@pytest.mark.parametrize("size", [(1280, 720), (1918, 1078), (16, 16)])
def test_a_repeat_shows_the_last_frame_and_changes_nothing_after_it(size: tuple[int, int]) -> None:
    width, height = size
    rng = np.random.default_rng(5)
    pictures = []
    for i in range(5):
        picture = text_picture(width, height, seed=i)
        box = picture[(i * 37) % height :][:60, : width // 3]
        box[...] = rng.integers(0, 256, box.shape, np.uint8)  # texture the encoder must code
        pictures.append(picture)
    frames = encoded(pictures)
    repeat = repeat_frame(width, height)
    assert len(repeat) < 64 + width * height // 5000  # about a bit per macroblock, at most
    for decoder in ("libvpx", "vp8"):
        plain = decoded(decoder, frames)
        repeated = decoded(decoder, [*frames[:2], repeat, repeat, *frames[2:]])
        assert len(plain) == 5 and len(repeated) == 7
        assert np.array_equal(repeated[2], plain[1]) and np.array_equal(repeated[3], plain[1])
        for after, without in zip(repeated[4:], plain[2:], strict=True):
            assert np.array_equal(after, without)


def test_a_repeat_starts_as_an_inter_frame_shown() -> None:
    tag = int.from_bytes(repeat_frame(640, 360)[:3], "little")
    assert tag & 1 == 1 and (tag >> 4) & 1 == 1  # not a keyframe; shown
    assert 0 < tag >> 5 < len(repeat_frame(640, 360))  # its first partition's size
