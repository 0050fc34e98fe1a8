"""The browser terminal over FRP8 draws the display's WebRTC video track, and the few-colour
tiles beside it from the control channel: headless Chromium against the server's aiortc peer
through coturn, a real Xvfb with a red xterm on it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined, screenshot
from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.e2e.test_terminal_picture import APP, RED, needs_x, red_box, settled_screen
from tests.support.coturn import TURNSERVER, Coturn

pytestmark = pytest.mark.skipif(
    TURNSERVER is None or not CHROMIUM.exists(), reason="needs coturn and Debian chromium"
)

# The page's peer connections, for their statistics.
KEEP_PEERS = """(() => { const Native = window.RTCPeerConnection; window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); } }; })();"""
INBOUND = """async () => { for (const pc of window.__pcs)
  for (const r of (await pc.getStats()).values())
    if (r.type === "inbound-rtp" && r.kind === "video") return r;
  return null; }"""


@needs_x
def test_the_page_draws_the_display_track_and_exact_palette_tiles_beside_it(
    e2e: E2E, coturn: Coturn, browser: Browser, tmp_path: Path
) -> None:
    pad = {**FRP8_PAD, "app_command": APP, "display_ready_timeout": 10.0}
    server = frp8_server(e2e, coturn, launchpad=pad, display="xvfb")
    ticket = server.launch("alice", "rtc")
    sid = ticket["session_id"]
    browser.page.add_init_script(KEEP_PEERS)
    # The status bar shrinks once connected: at once here, so page screenshots taken seconds
    # apart differ only where the picture does.
    browser.page.add_init_script("window.openfrpCompactAfterMs = 0")
    joined(server, browser, ticket, server.port)
    truth = settled_screen(server, sid)
    browser.wait("v.track !== undefined && v.track.frames >= 2 && v.track.codec !== null")
    track = browser.view()["track"]
    assert track["codec"] == "vp8"  # first in Chromium's offer among aiortc's codecs
    assert (track["width"], track["height"]) == (truth.shape[1], truth.shape[0])
    video = browser.page.evaluate(
        """() => { const v = document.getElementById('track');
                   const r = v.srcObject.getVideoTracks()[0];
                   return {width: v.videoWidth, height: v.videoHeight, paused: v.paused,
                           live: r.readyState}; }"""
    )
    size = {"width": truth.shape[1], "height": truth.shape[0]}
    assert video == {**size, "paused": False, "live": "live"}
    # The page shows the red xterm where the display has it (the page is the screen's size).
    shot = screenshot(browser, tmp_path / "page.png")
    x0, y0, x1, y1 = red_box(truth)
    assert (x0, y0) == (40, 30) and shot.shape == truth.shape
    inner = shot[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].astype(int)
    assert np.abs(inner - RED).max(axis=2).mean() < 16
    assert np.abs(shot[y1 + 40 : y1 + 80, x0:x1].astype(int)).max() < 24  # black below it
    assert browser.view()["video"]["palette"] >= 1  # the few colours came as palette tiles
    assert np.array_equal(shot[y0:y1, x0:x1], truth[y0:y1, x0:x1])  # so the box is exact
    # The screen is still: a repeat a second keeps Chromium from asking for a keyframe, at
    # about a hundred bytes each, and it decodes them to the same picture.
    time.sleep(1.0)
    sharpened = screenshot(browser)  # the still screen sent once more, at a finer quality
    before = browser.page.evaluate(INBOUND)
    time.sleep(3.5)
    after = browser.page.evaluate(INBOUND)
    repeats = after["framesDecoded"] - before["framesDecoded"]
    assert repeats >= 3 and after["keyFramesDecoded"] == before["keyFramesDecoded"]
    assert after["bytesReceived"] - before["bytesReceived"] < 130 * repeats  # the picture: 500
    assert np.array_equal(screenshot(browser), sharpened)
    # The track follows a window resize: the display takes the new size, the video shows it.
    browser.page.set_viewport_size({"width": 800, "height": 600})
    browser.wait("v.track.width === 800 && v.track.height === 600", timeout=15)
    server.log.wait_event(event="display.resized", session_id=sid)
    browser.page.wait_for_function(
        """() => { const r = document.getElementById("track").getBoundingClientRect();
                   return r.x === 0 && r.y === 0 && r.width === 800 && r.height === 600; }"""
    )
    browser.menu("close-session")
    browser.wait("v.finalCode === 4000")
    assert browser.errors == []
