"""The FRP8 video track over a real Xvfb: a frame when the screen changes, the same picture
again once a second when it does not, and a display that dies reported as failed grabs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from typing import Any

import numpy as np
import pytest

from openfrp.media.track import DisplayTrack
from openfrp.server.host import start_display
from openfrp.settings import SessionSettings

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xsetroot") is None,
    reason="needs Xvfb and xsetroot",
)


def test_the_track_sends_changes_and_a_rare_repeat_and_reports_a_dead_display() -> None:
    async def run() -> dict[str, Any]:
        display = await start_display(
            "xvfb", SessionSettings(display_ready_timeout=10.0), (320, 240)
        )
        grabs: list[tuple[bool, str]] = []
        track = DisplayTrack(lambda: display, repeat=1.0, on_grab=lambda *r: grabs.append(r))
        out: dict[str, Any] = {}
        try:
            first = await asyncio.wait_for(track.recv(), 5)
            started = time.monotonic()
            out["repeat"] = await asyncio.wait_for(track.recv(), 5)
            out["repeat_s"] = time.monotonic() - started
            subprocess.run(
                ["xsetroot", "-solid", "#00ff00"], env=display.env, check=True, timeout=10
            )
            started = time.monotonic()
            out["changed"] = await asyncio.wait_for(track.recv(), 5)
            out["changed_s"] = time.monotonic() - started
            out["first"], out["polls"] = first, track.grabs
            assert display.xvfb is not None
            os.kill(display.xvfb.pid, signal.SIGKILL)  # the Xvfb this test started
            await display.xvfb.wait()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(track.recv(), 1.2)  # no frame from a dead display
            out["grabs"] = list(grabs)
        finally:
            track.stop()
            await display.stop()
        return out

    out = asyncio.run(run())
    assert (out["first"].width, out["first"].height) == (320, 240)
    assert 0.8 < out["repeat_s"] < 1.5  # a still screen: nothing until the repeat is due
    assert out["polls"] >= 20  # it kept looking at the screen meanwhile (about 30 a second)
    assert out["changed_s"] < 0.5
    green = out["changed"].to_ndarray(format="rgb24")[120, 160]
    assert np.abs(green.astype(int) - (0, 255, 0)).max() < 3
    assert out["repeat"].pts > out["first"].pts and out["changed"].pts > out["repeat"].pts
    failed = [error for ok, error in out["grabs"] if not ok]
    assert len(failed) >= 2 and "exited" in failed[0]
