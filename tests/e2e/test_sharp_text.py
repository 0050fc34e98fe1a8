"""Text arrives exactly: a real xterm full of text, streamed to the Python terminal over FRP7,
shows pixel for pixel what the display holds (palette tiles, lossless), while a picture of
many colours drawn beside it goes as H.264."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.conftest import E2E
from tests.e2e.harness import E2EError, ServerProcess
from tests.e2e.test_terminal_picture import (
    SLOW_START,
    grab,
    needs_x,
    read_png,
    session_display,
)

LISTING = "xterm -geometry 80x24+0+0 -e sh -c 'ls -la /usr/bin | head -60; sleep 600'"
# Antialiased (Xft) text in three colours: more colours than one palette holds, on the screen
# and in the sample of most tiles.
SMOOTH = (
    "xterm -fa 'DejaVu Sans Mono' -fs 11 -geometry 70x20+0+0 -e sh -c "
    "'ls --color=always -la /usr/bin | head -40; sleep 600'"
)


def still_screen(server: ServerProcess, sid: str, timeout: float = 10.0) -> np.ndarray[Any, Any]:
    """The screen once the listing is drawn and nothing moves (two grabs 0.5 s apart agree)."""
    deadline = time.monotonic() + timeout
    before = grab(server, sid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = grab(server, sid)
        if np.array_equal(before, now) and len(np.unique(now.reshape(-1, 3), axis=0)) > 1:
            return now
        before = now
    raise E2EError(f"the display did not settle within {timeout}s")


def draw_noise(server: ServerProcess, sid: str, x: int, y: int, size: int) -> None:
    """Random colours on the root window, beside the xterm (as the app's own user)."""
    from Xlib import X

    display = session_display(server, sid)
    try:
        root = display.screen().root
        noise = np.random.default_rng(7).integers(0, 256, (size, size, 4), dtype=np.uint8)
        root.put_image(root.create_gc(), x, y, size, size, X.ZPixmap, 24, 0, noise.tobytes())
        display.sync()
    finally:
        display.close()


def screenshot(terminal: Any, path: Path, size: str) -> np.ndarray[Any, Any]:
    terminal.send(f"screenshot {path}")
    terminal.wait_line(rf"^screenshot saved: {path} \({size}\)$")
    return read_png(path)


def joined(e2e: E2E, app: str) -> tuple[ServerProcess, str, Any]:
    """A server on Xvfb running `app`, and a Python terminal joined to its session at 640x400."""
    server = e2e.server(
        server={"display": "xvfb"},
        launchpads={"x": {"app_command": app, **SLOW_START}},
    )
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    terminal = e2e.terminal(ticket["connect_url"], extra=["--size", "640x400"])
    terminal.wait_line(rf"^connected to {sid} as c-")
    return server, sid, terminal


@needs_x
def test_text_arrives_pixel_exact_and_many_colours_go_as_h264(e2e: E2E, tmp_path: Path) -> None:
    server, sid, terminal = joined(e2e, LISTING)
    codec = server.log.wait_event(event="stream.codec", session_id=sid)
    assert codec["attrs"]["codec"] == "h264" and codec["attrs"]["palette"] is True
    truth = still_screen(server, sid)
    time.sleep(1.5)  # the still listing has reached the terminal
    text = screenshot(terminal, tmp_path / "text.png", "640x400")
    assert text.shape == truth.shape
    differ = (text != truth).any(axis=2)
    assert not differ.any(), f"{differ.mean():.2%} of pixels differ from the display"

    draw_noise(server, sid, 500, 260, 128)
    truth = still_screen(server, sid)
    time.sleep(1.5)
    mixed = screenshot(terminal, tmp_path / "mixed.png", "640x400")
    error = np.abs(mixed.astype(int) - truth.astype(int)).max(axis=2)
    assert error[260:388, 500:628].mean() < 96  # the noise, through H.264
    assert (error[:250, :480] > 64).mean() < 0.02  # the text beside it, still legible
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    stats = server.log.wait_event(event="stats", session_id=sid, attrs={"final": True})["attrs"]
    assert stats["palette_frames"] >= 1 and stats["frames"] > stats["palette_frames"], stats


@needs_x
def test_a_still_screen_of_antialiased_text_ends_pixel_exact(e2e: E2E, tmp_path: Path) -> None:
    server, sid, terminal = joined(e2e, SMOOTH)
    truth = still_screen(server, sid)
    assert len(np.unique(truth.reshape(-1, 3), axis=0)) > 256
    deadline = time.monotonic() + 10  # the refinement starts 0.5 s into a still screen
    while True:
        text = screenshot(terminal, tmp_path / "smooth.png", "640x400")
        differ = (text != truth).any(axis=2)
        if not differ.any() or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not differ.any(), f"{differ.mean():.2%} of pixels differ from the display"
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
