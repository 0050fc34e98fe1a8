"""What a person sees in the browser terminal: a real Xvfb session with a red xterm, the page
screenshotted by headless Chromium and compared with the display's own pixels; after a resume,
and after the window is resized."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined, shown
from tests.e2e.conftest import E2E
from tests.e2e.harness import E2EError, ServerProcess, bounded
from tests.e2e.test_terminal_picture import APP, RED, needs_x, read_png, red_box, settled_screen

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    needs_x,
]
SHOTS = Path("/tmp/team")


def desktop(e2e: E2E) -> ServerProcess:
    return e2e.server(
        server={"display": "xvfb", "video_fps": 15},
        launchpads={"x": {"app_command": APP, "display_ready_timeout": 10.0}},
    )


def resources(server: ServerProcess, sid: str) -> str:
    """The X resources of the session's display (`xrdb -query`), as the app's own user."""
    number = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]["display"]
    accounts = server.log.find(event="session.account", session_id=sid)
    env = {**os.environ, "DISPLAY": f":{number}"}
    if accounts:
        env["XAUTHORITY"] = str(Path(accounts[0]["attrs"]["home"]) / ".Xauthority")
    return subprocess.run(
        ["xrdb", "-query"], env=env, capture_output=True, text=True, check=True, timeout=10
    ).stdout


def page_picture(browser: Browser, path: Path) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """The page as a person sees it, cut to where the session's screen is drawn (device
    pixels), and the page's own account of that place."""
    browser.page.screenshot(path=str(path))
    shot = read_png(path)
    at = browser.view()["video"]["picture"]
    return shot[at["y"] : at["y"] + at["height"], at["x"] : at["x"] + at["width"]], at


def covered(browser: Browser) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of what floats over the picture, in device pixels: the bar,
    pop-ups, stats."""
    boxes: list[list[float]] = browser.page.evaluate(
        """() => [...document.querySelectorAll('#bar, #popups > *, #stats:not([hidden])')]
                 .map((e) => e.getBoundingClientRect())
                 .map((r) => [r.left, r.top, r.right, r.bottom]
                             .map((v) => v * window.devicePixelRatio))"""
    )
    return [(int(a), int(b), int(c) + 1, int(d) + 1) for a, b, c, d in boxes]


def shows(browser: Browser, truth: np.ndarray[Any, Any], path: Path, timeout: float = 10) -> None:
    """Within `timeout`, the page draws the display's pixels 1:1 (lossy codecs allowed a small
    error) except where the page's own controls float over them."""
    failure = ""
    for _ in bounded(timeout):
        picture, at = page_picture(browser, path)
        if picture.shape != truth.shape:
            failure = f"picture {picture.shape} at {at}, display {truth.shape}"
            time.sleep(0.2)
            continue
        mask = np.ones(truth.shape[:2], bool)
        for x0, y0, x1, y1 in covered(browser):
            mask[max(0, y0 - at["y"]) : max(0, y1 - at["y"]), max(0, x0 - at["x"]) : x1] = False
        error = np.abs(picture.astype(int) - truth.astype(int)).max(axis=2)[mask]
        x0, y0, x1, y1 = red_box(truth)
        inner = picture[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].astype(int)
        red_error = np.abs(inner - RED).max(axis=2).mean()
        if (error > 48).mean() < 0.01 and red_error < 12:
            return
        failure = f"{(error > 48).mean():.2%} of pixels differ; red box error {red_error:.1f}"
        time.sleep(0.2)
    raise E2EError(f"the page does not show the display within {timeout}s: {failure}")


def test_the_page_shows_the_display_and_its_app_where_it_is(e2e: E2E, browser: Browser) -> None:
    server = desktop(e2e)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    browser.page.set_viewport_size({"width": 1280, "height": 720})
    joined(server, browser, ticket, server.port)
    truth = settled_screen(server, sid)
    assert red_box(truth)[:2] == (40, 30)  # where the app asked to be
    shot = SHOTS / "browser-desktop.png" if SHOTS.is_dir() else e2e.root / "page.png"
    shows(browser, truth, shot)
    view = browser.view()["video"]
    assert view["picture"]["scale"] == 1  # the window's own size: drawn 1:1, crisp
    assert view["codec"] in view["decoders"]
    decoder = server.log.wait_event(event="stream.decoder", source="terminal", session_id=sid)
    assert decoder["attrs"]["codec"] == view["codec"]
    hello = server.log.wait_event(event="connection.established", source="terminal")
    assert hello["session_id"] == sid
    assert browser.errors == []


def test_a_resume_starts_with_a_keyframe_and_a_clean_picture(e2e: E2E, browser: Browser) -> None:
    server = desktop(e2e)
    ticket = server.launch("bob", "x")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    browser.page.set_viewport_size({"width": 1280, "height": 720})
    joined(server, browser, ticket, proxy.port)
    truth = settled_screen(server, sid)
    shows(browser, truth, e2e.root / "before.png")
    proxy.control("cut")  # the path resets: the page reconnects and resumes
    proxy.control("restore")
    browser.wait("v.state === 'connected (resumed)'", timeout=15)
    server.log.wait_event(event="session.resumed", session_id=sid)
    # The pop-ups about the lost path went with it; what is left does not hide the screen.
    assert not [t for t in browser.popups() if shown(4102) in t or shown(4103) in t]
    browser.wait("v.video.starts.length === 2 && v.video.starts[1] !== null")
    first = browser.view()["video"]["starts"][1]
    assert first["key"] is True, first  # nothing of the new connection was dropped
    shows(browser, settled_screen(server, sid), e2e.root / "after.png")
    assert browser.errors == []


def test_the_screen_follows_the_window(e2e: E2E, browser: Browser) -> None:
    server = desktop(e2e)
    ticket = server.launch("carol", "x")
    sid = ticket["session_id"]
    browser.page.set_viewport_size({"width": 800, "height": 600})
    joined(server, browser, ticket, server.port)
    truth = settled_screen(server, sid)
    assert truth.shape[:2] == (600, 800)  # the display took the window's size at join
    shows(browser, truth, e2e.root / "small.png")
    ready = server.log.wait_event(event="display.ready", session_id=sid)
    assert ready["attrs"]["dpi"] is None and "Xft.dpi" not in resources(server, sid)

    browser.page.set_viewport_size({"width": 900, "height": 700})
    browser.page.set_viewport_size({"width": 1000, "height": 640})  # one resize is sent
    browser.wait("v.video.remote.width === 1000 && v.video.remote.height === 640")
    for _ in bounded(10.0):
        truth = settled_screen(server, sid)
        if truth.shape[:2] == (640, 1000):
            break
    shows(browser, truth, e2e.root / "large.png")
    assert browser.view()["video"]["picture"]["scale"] == 1
    assert browser.errors == []


def test_the_app_fills_the_screen_and_follows_the_window(e2e: E2E, browser: Browser) -> None:
    pad = {"app_command": APP, "display_ready_timeout": 10.0, "fit_windows": True}
    server = e2e.server(server={"display": "xvfb", "video_fps": 15}, launchpads={"x": pad})
    ticket = server.launch("erin", "x")
    sid = ticket["session_id"]
    browser.page.set_viewport_size({"width": 800, "height": 600})
    joined(server, browser, ticket, server.port)
    ready = server.log.wait_event(event="display.ready", session_id=sid)
    assert ready["attrs"]["fit_windows"] is True
    for size in ((800, 600), (1000, 640)):
        browser.page.set_viewport_size({"width": size[0], "height": size[1]})
        for _ in bounded(10.0):  # the red xterm asked for 30x8 at +40+30: it fills the screen
            truth = settled_screen(server, sid)
            if red_box(truth) == (0, 0, *size):
                break
        assert red_box(truth) == (0, 0, *size), red_box(truth)
        shows(browser, truth, e2e.root / f"filled-{size[0]}.png")
    assert browser.errors == []


def test_a_hidpi_window_gets_a_screen_in_device_pixels_drawn_1to1(
    e2e: E2E, browser: Browser
) -> None:
    server = desktop(e2e)
    ticket = server.launch("dave", "x")
    sid = ticket["session_id"]
    context = browser.page.context.browser.new_context(
        viewport={"width": 480, "height": 320}, device_scale_factor=2
    )
    try:
        hidpi = Browser(context.new_page())
        joined(server, hidpi, ticket, server.port)
        truth = settled_screen(server, sid)
        assert truth.shape[:2] == (640, 960)  # 480x320 CSS pixels at 2 device pixels each
        assert hidpi.view()["video"]["screen"] == {"width": 960, "height": 640, "scale": 2}
        shows(hidpi, truth, e2e.root / "hidpi.png")  # the screenshot is in device pixels
        # The apps are told the pixels are twice as dense: their text keeps its size.
        ready = server.log.wait_event(event="display.ready", session_id=sid)
        assert ready["attrs"]["dpi"] == 192
        assert "Xft.dpi:\t192" in resources(server, sid)
        assert hidpi.errors == []
    finally:
        context.close()
