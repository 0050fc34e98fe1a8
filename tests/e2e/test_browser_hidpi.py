"""A window at 2 device pixels per CSS pixel whose device pixels are over the launchpad's
limits (1920x1080) gets a screen of its own shape: its CSS pixels, each drawn as exactly 2x2
device pixels, filling the window, and a pointer lands on the pixel pointed at.

The page asked for its device pixels and the server cut each side to the limits alone: a
1440x900 window got 1920x1080, drawn 1.5x (soft text) with 45 px black bars, a 900x800 one
1800x1080 with a third of the window black.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openfrp.desk.xconnect import open_display
from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded
from tests.e2e.test_browser_desktop import covered, desktop, resources
from tests.e2e.test_terminal_picture import needs_x, read_png, red_box, settled_screen
from tests.support.xselection import read_cookie

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    needs_x,
]
SHADOW = 12  # CSS pixels a floating control's shadow reaches beyond its box


def pointer(server: Any, sid: str) -> tuple[int, int]:
    """Where the session's X pointer is."""
    number = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]["display"]
    account = server.log.wait_event(event="session.account", session_id=sid)
    cookie = read_cookie(str(Path(account["attrs"]["home"]) / ".Xauthority"))
    connection = open_display(f":{number}", cookie)
    try:
        at = connection.screen().root.query_pointer()
        return at.root_x, at.root_y
    finally:
        connection.close()


def test_a_hidpi_window_over_the_limits_gets_its_css_pixels_drawn_2x(
    e2e: E2E, browser: Browser, tmp_path: Path
) -> None:
    server = desktop(e2e)
    ticket = server.launch("hana", "x")
    sid = ticket["session_id"]
    context = browser.page.context.browser.new_context(
        viewport={"width": 1440, "height": 900}, device_scale_factor=2
    )
    try:
        hidpi = Browser(context.new_page())
        page = hidpi.page
        joined(server, hidpi, ticket, server.port)
        # CSS pixels: the apps are told the usual density, so their text keeps its size.
        ready = server.log.wait_event(event="display.ready", session_id=sid)
        assert ready["attrs"]["dpi"] is None
        assert "Xft.dpi" not in resources(server, sid)
        for width, height in ((1440, 900), (900, 800), (1000, 540)):
            page.set_viewport_size({"width": width, "height": height})
            hidpi.wait(
                f"v.video.remote !== null && v.video.remote.width === {width}"
                f" && v.video.remote.height === {height}",
                timeout=15,
            )
            assert hidpi.view()["video"]["asked"] == {"width": width, "height": height, "scale": 1}
            truth = settled_screen(server, sid)
            assert truth.shape[:2] == (height, width)
            for _ in bounded(10.0):  # a frame of the new size is drawn
                at = hidpi.view()["video"]["picture"]
                if at is not None and at["width"] == 2 * width:
                    break
                time.sleep(0.1)
            # The whole window, no bars, at exactly 2:1.
            assert at == {"x": 0, "y": 0, "width": 2 * width, "height": 2 * height, "scale": 2}
            shot_path = tmp_path / f"hidpi-{width}.png"
            for _ in bounded(10.0):
                floating = covered(hidpi)
                page.screenshot(path=str(shot_path))
                floating += covered(hidpi)
                shot = read_png(shot_path)[: 2 * height, : 2 * width].astype(int)
                x0, y0, x1, y1 = red_box(truth)
                inner = shot[2 * y0 + 8 : 2 * y1 - 8, 2 * x0 + 8 : 2 * x1 - 8]
                if inner.size and np.abs(inner - [255, 0, 0]).max(axis=2).mean() < 12:
                    break
                time.sleep(0.2)
            # Each session pixel is a 2x2 block of one colour: drawn, not resampled (but for
            # the page's own controls floating over the picture, and their shadows).
            mixed = np.ptp(shot.reshape(height, 2, width, 2, 3), axis=(1, 3)).max(axis=2) > 0
            for bx0, by0, bx1, by1 in floating:
                y0, x0 = max(0, by0 // 2 - SHADOW), max(0, bx0 // 2 - SHADOW)
                mixed[y0 : by1 // 2 + SHADOW, x0 : bx1 // 2 + SHADOW] = False
            assert mixed.sum() == 0, np.argwhere(mixed)[:10]
            assert red_box(shot[::2, ::2]) == red_box(truth)
            # A pointer lands on the pixel pointed at.
            for cx, cy in ((201.5, 77.5), (width - 3.5, height - 2.5)):
                want = page.evaluate(f"() => window.openfrpVideo.toRemote({cx}, {cy})")
                assert want == {"x": int(cx), "y": int(cy)}
                page.mouse.move(cx, cy)
                for _ in bounded(5.0):
                    if pointer(server, sid) == (int(cx), int(cy)):
                        break
                    time.sleep(0.05)
                assert pointer(server, sid) == (int(cx), int(cy))
        assert hidpi.errors == []
    finally:
        context.close()


def test_a_window_moved_to_a_screen_of_another_pixel_ratio_gets_its_device_pixels(
    e2e: E2E, browser: Browser
) -> None:
    """The CSS size stays and the browser fires no `resize` (a window dragged from a 1x to a
    1.5x monitor, the system's scale changed): the session's screen still follows the device
    pixels. It kept the old size, drawn stretched and soft."""
    server = desktop(e2e)
    ticket = server.launch("ines", "x")
    context = browser.page.context.browser.new_context(viewport={"width": 800, "height": 500})
    try:
        moved = Browser(context.new_page())
        page = moved.page
        joined(server, moved, ticket, server.port)
        moved.wait("v.video.remote !== null && v.video.remote.width === 800", timeout=15)
        page.evaluate("() => { window.resizes = 0; addEventListener('resize', () => resizes++); }")
        cdp = context.new_cdp_session(page)
        metrics = {"width": 800, "height": 500, "mobile": False}
        for ratio, width, height in ((1.5, 1200, 750), (1, 800, 500)):
            cdp.send("Emulation.setDeviceMetricsOverride", {**metrics, "deviceScaleFactor": ratio})
            moved.wait(
                f"v.video.remote !== null && v.video.remote.width === {width}"
                f" && v.video.remote.height === {height}",
                timeout=15,
            )
            asked = moved.view()["video"]["asked"]
            assert asked == {"width": width, "height": height, "scale": ratio}
        assert page.evaluate("() => window.resizes") == 0  # only the ratio told the page
        assert moved.errors == []
    finally:
        context.close()
