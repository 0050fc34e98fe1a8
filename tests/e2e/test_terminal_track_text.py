"""The Python terminal over FRP8 (aiortc through coturn, a real Xvfb): text comes as exact
palette tiles on the data channel over the video track's picture, so its screenshot is the
display's own pixels where VP8 alone blurs every glyph; a gradient drawn beside the text turns
to video from the track frame that brings it (its RTP timestamp), and the text is exact again
once the gradient is gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.e2e.conftest import E2E
from tests.e2e.harness import TerminalProcess
from tests.e2e.test_browser_track_text import gradient, put
from tests.e2e.test_sharp_text import still_screen
from tests.e2e.test_terminal_picture import frp8_session, needs_x, read_png
from tests.support.coturn import TURNSERVER, Coturn

APP = (
    "xterm -bg white -fg black -bw 0 -geometry 40x12+16+16 "
    "-e sh -c 'seq -f \"line %g of the text\" 1 10; exec sleep 600'"
)
OVER = (400, 200, 192, 128)  # x, y, width, height of the gradient, on the root beside the xterm


def screenshot(terminal: TerminalProcess, path: Path) -> NDArray[np.uint8]:
    mark = terminal.mark()
    terminal.send(f"screenshot {path}")
    terminal.wait_line(rf"^screenshot saved: {path} \(640x400\)$", start=mark)
    return read_png(path)


Test = Callable[[NDArray[np.uint8]], tuple[bool, str]]  # a picture -> ok, what it found


def shows(terminal: TerminalProcess, path: Path, test: Test, timeout: float = 10.0) -> None:
    """Screenshots until `test` holds (it fails with what it found after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, found = test(screenshot(terminal, path))
        assert ok or time.monotonic() < deadline, found
        if ok:
            return
        time.sleep(0.3)


@needs_x
@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")
def test_text_is_exact_over_the_track_and_a_gradient_comes_as_video(
    e2e: E2E, coturn: Coturn, tmp_path: Path
) -> None:
    server, sid, terminal = frp8_session(e2e, coturn, {"app_command": APP}, ["--size", "640x400"])
    truth = still_screen(server, sid)
    ys, xs = np.nonzero((truth == 255).all(axis=2))  # the xterm's white window
    ink = np.zeros(truth.shape[:2], np.bool_)
    window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    ink[window] = (truth[window] < 64).all(axis=2)
    assert ink.sum() > 500  # the text is there

    def exact(shot: NDArray[np.uint8]) -> tuple[bool, str]:
        same = (shot == truth).all(axis=2)
        whole, glyphs = float(same.mean()), float(same[ink].mean())
        return min(whole, glyphs) >= 0.999, f"exact: {whole:.2%} of the pixels, text {glyphs:.2%}"

    shows(terminal, tmp_path / "text.png", exact)
    time.sleep(2.5)  # the track's frames come (a repeat each second): the text stays over them
    ok, found = exact(screenshot(terminal, tmp_path / "later.png"))
    assert ok, found

    x, y, w, h = OVER
    put(server, sid, x, y, gradient(w, h))
    drawn = still_screen(server, sid)
    inside = (slice(y, y + h), slice(x, x + w))

    def near(shot: NDArray[np.uint8]) -> tuple[bool, str]:
        error = float(np.abs(shot[inside].astype(int) - drawn[inside]).mean())
        text = bool((shot[ink] == drawn[ink]).all())
        return error < 6 and text, f"gradient off by {error:.1f} on average, text exact: {text}"

    shows(terminal, tmp_path / "gradient.png", near)
    put(server, sid, x, y, truth[y : y + h, x : x + w])
    shows(terminal, tmp_path / "after.png", exact)

    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    final = next(e for e in terminal.log.find(event="stats") if e["attrs"]["final"])
    assert final["attrs"]["codec"] == "vp8" and final["attrs"]["track_frames"] >= 2
    assert server.log.wait_event(event="session.ended", session_id=sid)["code"] == 4000
