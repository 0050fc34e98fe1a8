"""Display sources: the synthetic display and a real Xvfb screen read from its framebuffer."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from openfrp.media.encoder import rgb_zlib
from openfrp.media.synthetic import SyntheticDisplay
from openfrp.media.wire import CODEC_RGB_ZLIB, FLAG_KEY, frame_number, parse_frame
from openfrp.media.xvfb import Framebuffer, XwdError
from openfrp.server.host import StartFailure, fit_size, start_display
from openfrp.settings import SessionSettings


def test_frames_round_trip_and_move() -> None:
    display = SyntheticDisplay(width=8, height=4)
    first, second = display.grab(), display.grab()
    assert first.shape == (4, 8, 4) and first.dtype == np.uint8
    assert not np.array_equal(first, second)
    frame = rgb_zlib(7, second)
    assert frame_number(frame) == 7
    parsed = parse_frame(frame)
    assert parsed is not None
    header, payload = parsed
    assert (header.width, header.height, header.codec, header.flags) == (
        8,
        4,
        CODEC_RGB_ZLIB,
        FLAG_KEY,
    )
    rgb = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(4, 8, 3)
    assert np.array_equal(rgb, second[:, :, 2::-1])
    assert frame_number(b"abc") is None


def test_sizes_are_even_and_within_the_launchpad_limits_in_the_windows_shape() -> None:
    settings = replace(SessionSettings(), max_width=1600, max_height=900)
    assert fit_size(1281, 719, settings) == (1280, 718)
    assert fit_size(5000, 5000, settings) == (900, 900)
    assert fit_size(10, 10, settings) == (320, 200)
    # A window over the limits keeps its shape, scaled by one factor (it was cut on each
    # side alone: 2880x1800 got 1920x1080).
    settings = SessionSettings()  # 1920x1080
    assert fit_size(2880, 1800, settings) == (1728, 1080)
    assert fit_size(1800, 1600, settings) == (1214, 1080)
    assert fit_size(4000, 1000, settings) == (1920, 480)
    assert fit_size(1920, 1080, settings) == (1920, 1080)


def test_a_file_that_is_not_xwd_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "fb"
    bogus.write_bytes(b"\0" * 200)
    with pytest.raises(XwdError):
        Framebuffer(bogus)


def test_a_grab_as_wide_as_the_framebuffer_is_a_copy(tmp_path: Path) -> None:
    """The whole file's width is contiguous in the map: the grab must still not follow it."""
    width, height = 8, 4
    header = [0] * 25
    header[:8] = [100, 7, 2, 24, width, height, 0, 0]
    header[11], header[12] = 32, width * 4
    path = tmp_path / "fb"
    path.write_bytes(struct.pack(">25I", *header) + bytes(width * height * 4))
    framebuffer = Framebuffer(path)
    try:
        whole, part = framebuffer.grab(width, height), framebuffer.grab(4, 2, 2, 1)
        with path.open("r+b") as handle:
            handle.seek(100)
            handle.write(b"\xff" * (width * height * 4))
        assert framebuffer.grab(width, height).min() == 255
        assert whole.max() == 0 and part.max() == 0
    finally:
        del whole, part
        framebuffer.close()


needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


@needs_xvfb
def test_xvfb_screen_is_read_from_its_framebuffer() -> None:
    async def run() -> tuple[int, int, np.ndarray, np.ndarray]:
        display = await start_display("xvfb", SessionSettings(), (1001, 600))
        try:
            assert display.number is not None and display.env["DISPLAY"].startswith(":")
            first = await asyncio.to_thread(display.grab)
            await asyncio.to_thread(display.resize, 640, 480)
            return display.width, display.height, first, await asyncio.to_thread(display.grab)
        finally:
            await display.stop()

    width, height, first, second = asyncio.run(run())
    assert first.shape == (600, 1000, 4)  # made even
    assert (width, height) == (640, 480) and second.shape == (480, 640, 4)


@needs_xvfb
def test_xvfb_paints_are_seen_in_the_capture() -> None:
    """Fill the root window white with a real X client; the capture must turn white."""
    if shutil.which("xsetroot") is None:
        pytest.skip("xsetroot (x11-xserver-utils) is not installed")

    async def run() -> tuple[np.ndarray, np.ndarray]:
        display = await start_display("xvfb", SessionSettings(), (800, 600))
        try:
            await asyncio.to_thread(display.resize, 700, 500)
            before = display.grab()
            subprocess.run(
                ["xsetroot", "-solid", "#ff8000"], env=display.env, check=True, timeout=10
            )
            await asyncio.sleep(0.2)
            return before, display.grab()
        finally:
            await display.stop()

    before, after = asyncio.run(run())
    assert not np.array_equal(before, after)
    # BGRX, the whole visible screen (the framebuffer's stride stays the largest size)
    assert after.shape == (500, 700, 4)
    assert (after[:, :, :3] == (0x00, 0x80, 0xFF)).all()


@needs_xvfb
def test_display_not_ready_in_time_is_4027() -> None:
    settings = replace(SessionSettings(), display_ready_timeout=0.001)
    with pytest.raises(StartFailure) as failure:
        asyncio.run(start_display("xvfb", settings))
    assert failure.value.code == 4027
    assert "not ready within" in failure.value.error
