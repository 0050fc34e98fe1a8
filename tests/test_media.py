"""Display sources: the synthetic display and a real Xvfb screen read from its framebuffer."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from openfrp.media.synthetic import HEADER, SyntheticDisplay, encode_frame, frame_number
from openfrp.media.xvfb import XvfbSource, XwdError
from openfrp.server.host import StartFailure, start_display
from openfrp.settings import SessionSettings


def test_frames_round_trip_and_move() -> None:
    display = SyntheticDisplay(width=8, height=4)
    first, second = display.capture(), display.capture()
    assert len(first) == 8 * 4 * 3 and first != second
    frame = encode_frame(7, 8, 4, second)
    assert frame_number(frame) == 7
    assert HEADER.unpack_from(frame)[0] == 7
    _, width, height, fmt = HEADER.unpack_from(frame)
    assert (width, height, fmt) == (8, 4, 1)
    assert zlib.decompress(frame[HEADER.size :]) == second
    assert frame_number(b"abc") is None


def test_a_file_that_is_not_xwd_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "fb"
    bogus.write_bytes(b"\0" * 200)
    with pytest.raises(XwdError):
        XvfbSource(bogus)


needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


@needs_xvfb
def test_xvfb_screen_is_read_from_its_framebuffer() -> None:
    async def run() -> tuple[int, int, bytes]:
        display = await start_display("xvfb", SessionSettings())
        try:
            assert display.number is not None and display.env["DISPLAY"].startswith(":")
            source = display.source
            return source.width, source.height, source.capture()
        finally:
            await display.stop()

    width, height, rgb = asyncio.run(run())
    assert (width, height) == (640, 480)
    assert len(rgb) == 640 * 480 * 3


@needs_xvfb
def test_xvfb_paints_are_seen_in_the_capture() -> None:
    """Fill the root window white with a real X client; the capture must turn white."""
    if shutil.which("xsetroot") is None:
        pytest.skip("xsetroot (x11-xserver-utils) is not installed")

    async def run() -> tuple[bytes, bytes]:
        display = await start_display("xvfb", SessionSettings())
        try:
            before = display.source.capture()
            subprocess.run(
                ["xsetroot", "-solid", "#ffffff"], env=display.env, check=True, timeout=10
            )
            await asyncio.sleep(0.2)
            return before, display.source.capture()
        finally:
            await display.stop()

    before, after = asyncio.run(run())
    assert before != after
    assert after[:30] == b"\xff" * 30


@needs_xvfb
def test_display_not_ready_in_time_is_4027() -> None:
    settings = replace(SessionSettings(), display_ready_timeout=0.001)
    with pytest.raises(StartFailure) as failure:
        asyncio.run(start_display("xvfb", settings))
    assert failure.value.code == 4027
    assert "not ready within" in failure.value.error
