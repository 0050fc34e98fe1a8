"""The Python terminal's decoder on real encoded streams (PyAV libx264, mjpeg, zlib RGB)."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from openfrp.media.wire import CODEC_H264, CODEC_JPEG, CODEC_RGB_ZLIB, FLAG_KEY, pack_frame
from openfrp.terminal.video import VideoReceiver

W, H = 320, 240


def picture(colour: tuple[int, int, int], square: tuple[int, int, int]) -> np.ndarray[Any, Any]:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :] = colour
    rgb[60:120, 80:160] = square
    return rgb


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, *item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def of(self, kind: str) -> list[Any]:
        with self._lock:
            return [item[1] for item in self.items if item[0] == kind]


@pytest.fixture
def receiver() -> Iterator[tuple[VideoReceiver, Reports]]:
    reports = Reports()
    video = VideoReceiver(reports)
    try:
        yield video, reports
    finally:
        video.close()


def h264_stream(pictures: list[np.ndarray[Any, Any]]) -> list[tuple[bytes, bool]]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = W, H, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "bframes": "0"}
    out = []
    for pts, rgb in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = pts
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    return out


def settle(video: VideoReceiver) -> None:
    video.drain(5)


def test_h264_frames_are_decoded_acknowledged_and_saved(
    receiver: tuple[VideoReceiver, Reports], tmp_path: Path
) -> None:
    video, reports = receiver
    red, blue = picture((200, 0, 0), (0, 255, 0)), picture((0, 0, 200), (255, 255, 0))
    for number, (payload, key) in enumerate(h264_stream([red, red, blue]), start=1):
        video.feed(pack_frame(number, W, H, CODEC_H264, FLAG_KEY if key else 0, payload))
    settle(video)
    assert reports.of("shown") == [1, 2, 3] and not reports.of("keyframe")
    shot = video.picture()
    assert shot is not None and shot.shape == (H, W, 3)
    assert np.abs(shot[200, 20].astype(int) - (0, 0, 200)).max() < 8
    assert np.abs(shot[90, 120].astype(int) - (255, 255, 0)).max() < 8
    assert video.screenshot(tmp_path / "shot.png") == (W, H)
    with av.open(str(tmp_path / "shot.png")) as container:
        saved = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(saved, shot)
    stats = video.stats(whole=True)
    assert (stats.codec, stats.frames, stats.dropped, stats.width) == ("h264", 3, 0, W)
    assert stats.mbit_s > 0


def test_a_gap_skips_to_the_next_keyframe_and_asks_for_one(
    receiver: tuple[VideoReceiver, Reports],
) -> None:
    video, reports = receiver
    red = picture((200, 0, 0), (0, 255, 0))
    stream = h264_stream([red] * 4)
    video.feed(pack_frame(1, W, H, CODEC_H264, FLAG_KEY, stream[0][0]))
    video.feed(pack_frame(3, W, H, CODEC_H264, 0, stream[2][0]))  # frame 2 never arrived
    video.feed(pack_frame(4, W, H, CODEC_H264, 0, stream[3][0]))
    settle(video)
    assert reports.of("shown") == [1]
    assert reports.of("skipped") == [3, 4]  # still acknowledged: the server's window moves
    assert reports.of("keyframe") == ["gap"]  # asked once, not for every frame
    again = h264_stream([picture((0, 0, 200), (0, 0, 0))])[0][0]
    video.feed(pack_frame(5, W, H, CODEC_H264, FLAG_KEY, again))
    settle(video)
    assert reports.of("shown") == [1, 5] and video.stats(whole=True).dropped == 2
    shot = video.picture()
    assert shot is not None and np.abs(shot[90, 120].astype(int)).max() < 8


def test_a_new_connection_waits_for_its_keyframe(
    receiver: tuple[VideoReceiver, Reports],
) -> None:
    video, reports = receiver
    stream = h264_stream([picture((200, 0, 0), (0, 255, 0))] * 2)
    video.feed(pack_frame(7, W, H, CODEC_H264, 0, stream[1][0]))
    settle(video)
    assert reports.of("keyframe") == ["start"] and reports.of("skipped") == [7]
    video.new_connection()
    video.feed(pack_frame(1, W, H, CODEC_H264, FLAG_KEY, stream[0][0]))
    settle(video)
    assert reports.of("shown") == [1]


def test_jpeg_and_rgb_zlib_frames_stand_alone(receiver: tuple[VideoReceiver, Reports]) -> None:
    video, reports = receiver
    green = picture((0, 180, 0), (255, 255, 255))
    video.feed(pack_frame(1, W, H, CODEC_RGB_ZLIB, 0, zlib.compress(green.tobytes())))
    settle(video)
    shot = video.picture()
    assert shot is not None and np.array_equal(shot, green)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = W, H, "yuvj420p"
    encoder.time_base = Fraction(1, 30)
    frame = av.VideoFrame.from_ndarray(picture((0, 0, 200), (0, 0, 0)), format="rgb24")
    jpeg = b"".join(bytes(p) for p in encoder.encode(frame.reformat(format="yuvj420p")))
    video.feed(pack_frame(9, W, H, CODEC_JPEG, 0, jpeg))  # not the next number: no matter
    video.feed(pack_frame(10, W, H, CODEC_RGB_ZLIB, 0, b"not zlib"))
    settle(video)
    assert reports.of("shown") == [1, 9] and reports.of("skipped") == [10]
    assert reports.of("keyframe")[0].startswith("decoder error: error")
    shot = video.picture()
    assert shot is not None and np.abs(shot[200, 20].astype(int) - (0, 0, 200)).max() < 10
    assert video.stats(whole=True).codec == "jpeg"


def test_the_event_loop_side_never_waits_for_a_slow_decoder(
    receiver: tuple[VideoReceiver, Reports],
) -> None:
    video, reports = receiver
    payload = zlib.compress(np.zeros((1080, 1920, 3), np.uint8).tobytes())
    started = time.perf_counter()
    for number in range(1, 41):
        video.feed(pack_frame(number, 1920, 1080, CODEC_RGB_ZLIB, 0, payload))
    assert time.perf_counter() - started < 0.05
    settle(video)
    shown, skipped = reports.of("shown"), reports.of("skipped")
    assert sorted(shown + skipped) == list(range(1, 41)) and skipped  # every frame acked
