"""Text beside the FRP8 video track: headless Chromium against a real Xvfb through coturn shows
an xterm's text pixel for pixel (palette tiles on the control channel), a gradient drawn beside
it as video in a <video> under the canvas, and the screen exactly again once it is gone; a
still screen costs next to nothing, and scrolling text goes on the channel, not in the video."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.e2e.browser import CHROMIUM, Browser, joined, screenshot
from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.e2e.harness import ServerProcess
from tests.e2e.test_browser_track import KEEP_PEERS
from tests.e2e.test_sharp_text import LISTING, still_screen
from tests.e2e.test_terminal_picture import needs_x, session_display
from tests.support.coturn import TURNSERVER, Coturn

pytestmark = pytest.mark.skipif(
    TURNSERVER is None or not CHROMIUM.exists(), reason="needs coturn and Debian chromium"
)

PAD = {**FRP8_PAD, "display_ready_timeout": 10.0}
TEXT = (slice(0, 320), slice(0, 480))  # rows, columns of the listing's text
PAGE = (slice(0, None), slice(0, 960))  # of the screen, where the page shows only the picture
OVER = (576, 64, 192, 192)  # x, y, width, height of the gradient, on the root beside the xterm
SCROLL = "xterm -geometry 80x24+0+0 -e sh -c 'while :; do ls -la /usr/bin; done'"
# Bytes each transport of the page received, and those of its video track.
BYTES = """async () => { let all = 0, video = 0;
  for (const pc of window.__pcs) for (const r of (await pc.getStats()).values()) {
    if (r.type === "transport") all += r.bytesReceived || 0;
    if (r.type === "inbound-rtp" && r.kind === "video") video += r.bytesReceived || 0; }
  return [all, video]; }"""

PLACED = """() => { const r = document.getElementById("track").getBoundingClientRect();
  return [r.x, r.y, r.width, r.height]; }"""
ALPHA = """([x, y]) => document.getElementById("screen").getContext("2d")
  .getImageData(x, y, 1, 1).data[3]"""
# The RTP timestamp of each track frame the page presents, in window.__shownRtp.
SHOWN_RTP = """() => { const video = document.getElementById("track");
  const seen = (now, meta) => { window.__shownRtp = meta.rtpTimestamp;
    video.requestVideoFrameCallback(seen); };
  video.requestVideoFrameCallback(seen); }"""
# A codec 6 frame naming the newest frame presented, the tile at (x, y) its region, as it
# comes from the channel when it arrives after that frame.
LATE_REGIONS = """([x, y, width, height]) => {
  const payload = new Uint8Array(10), view = new DataView(payload.buffer);
  view.setUint16(0, 1); view.setUint16(2, x); view.setUint16(4, y);
  view.setUint16(6, 64); view.setUint16(8, 64);
  window.openfrpVideo.trackRegions(
    { codec: "track", number: window.__shownRtp, width, height }, payload); }"""


def put(server: ServerProcess, sid: str, x: int, y: int, rgb: NDArray[np.uint8]) -> None:
    """Draw `rgb` on the root window at (x, y), as the app's own user."""
    from Xlib import X

    height, width = rgb.shape[:2]
    bgrx = np.zeros((height, width, 4), np.uint8)
    bgrx[:, :, :3] = rgb[:, :, ::-1]
    display = session_display(server, sid)
    try:
        root = display.screen().root
        root.put_image(root.create_gc(), x, y, width, height, X.ZPixmap, 24, 0, bgrx.tobytes())
        display.sync()
    finally:
        display.close()


def gradient(width: int, height: int) -> NDArray[np.uint8]:
    """Smooth, and of more colours than a palette tile holds."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], -1).astype(np.uint8)


def gradients_come_and_go(
    server: ServerProcess,
    sid: str,
    at: tuple[int, int, int, int],
    truth: NDArray[np.uint8],
    shows_near: Callable[[NDArray[np.uint8]], bool],
    shows_truth: Callable[[], bool],
) -> None:
    """Four gradients drawn at `at` (x, y, width, height) beside the text, each taken back:
    the page must show each (`shows_near` waits for the screen as drawn), then `truth` again."""
    x, y, w, h = at
    for shift in range(4):
        put(server, sid, x, y, (gradient(w, h) * (1 - 0.15 * shift)).astype(np.uint8))
        assert shows_near(still_screen(server, sid)), shift
        put(server, sid, x, y, truth[y : y + h, x : x + w])
        assert shows_truth(), shift


def moving_gradient(
    server: ServerProcess, sid: str, at: tuple[int, int, int, int], s: float
) -> None:
    """A gradient moving at `at` for `s` seconds, 20 pictures a second."""
    x, y, w, h = at
    start, shift = time.monotonic(), 0
    while time.monotonic() - start < s:
        shift += 1
        put(server, sid, x, y, np.roll(gradient(w, h), 8 * shift, axis=1))
        time.sleep(0.05)


def session(e2e: E2E, coturn: Coturn, browser: Browser, app: str) -> tuple[ServerProcess, str]:
    """An FRP8 server running `app` on an Xvfb, and the page joined to its session (its peer
    connections kept in window.__pcs for their byte counts)."""
    server = frp8_server(e2e, coturn, launchpad={**PAD, "app_command": app}, display="xvfb")
    ticket = server.launch("alice", "rtc")
    browser.page.add_init_script(KEEP_PEERS)
    joined(server, browser, ticket, server.port)
    return server, ticket["session_id"]


def closed(browser: Browser) -> None:
    browser.menu("close-session")
    browser.wait("v.finalCode === 4000")
    assert browser.errors == []


def settles(browser: Browser, test: Any, timeout: float = 8.0) -> NDArray[np.uint8]:
    """The page's screenshot once `test` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        shot = screenshot(browser)
        if test(shot) or time.monotonic() > deadline:
            return shot
        time.sleep(0.2)


def listing_shown(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> tuple[ServerProcess, str, NDArray[np.uint8], NDArray[np.uint8]]:
    """The listing's session once the page shows its text exactly: the server, the session,
    the display's pixels and the page's screenshot."""
    server, sid = session(e2e, coturn, browser, LISTING)
    truth = still_screen(server, sid)
    browser.wait("v.track !== undefined && v.track.frames >= 1 && v.video.palette >= 1")
    return server, sid, truth, settles(browser, lambda s: np.array_equal(s[TEXT], truth[TEXT]))


@needs_x
def test_text_beside_the_track_is_exact_and_a_region_turns_to_video_and_back(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    server, sid, truth, text = listing_shown(e2e, coturn, browser)
    assert np.array_equal(text[PAGE], truth[PAGE])  # all of it came as palette tiles
    # A gradient beside the text goes as video: shown, near enough, where it is drawn.
    x, y, w, h = OVER
    put(server, sid, x, y, gradient(w, h))
    drawn = still_screen(server, sid)
    inside = (slice(y, y + h), slice(x, x + w))
    video = settles(
        browser, lambda shot: np.abs(shot[inside].astype(int) - drawn[inside]).mean() < 6
    )
    assert np.abs(video[inside].astype(int) - drawn[inside]).mean() < 6
    # The <video> shows it, at the picture's place under the canvas, which is clear there.
    assert browser.page.evaluate(PLACED) == [0, 0, truth.shape[1], truth.shape[0]]
    assert browser.page.evaluate(ALPHA, [x + w // 2, y + h // 2]) == 0
    around = drawn.copy()
    around[y - 64 : y + h + 64, x - 64 : x + w + 64] = 0  # the tiles the gradient cuts
    video[y - 64 : y + h + 64, x - 64 : x + w + 64] = 0
    assert np.array_equal(video[PAGE], around[PAGE])  # the rest of the text stays exact
    # The root drawn back: exact again, palette tiles over the video's last picture of it.
    put(server, sid, x, y, truth[inside])
    back = settles(browser, lambda shot: np.array_equal(shot[PAGE], truth[PAGE]))
    assert np.array_equal(back[PAGE], truth[PAGE])
    closed(browser)


@needs_x
def test_scrolling_text_goes_beside_the_video_as_palette_tiles(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    session(e2e, coturn, browser, SCROLL)
    browser.wait("v.track !== undefined && v.track.frames >= 1 && v.video.palette >= 20")
    start, (all_before, video_before) = time.monotonic(), browser.page.evaluate(BYTES)
    pictures = browser.view()["video"]["palette"]
    time.sleep(4.0)
    all_after, video_after = browser.page.evaluate(BYTES)
    seconds = time.monotonic() - start
    fps = (browser.view()["video"]["palette"] - pictures) / seconds
    mbit = (all_after - all_before) * 8 / seconds / 1e6
    assert fps >= 15 and mbit < 0.6, (fps, mbit)
    assert video_after - video_before < (all_after - all_before) / 10  # the text is not video
    closed(browser)


@needs_x
def test_a_still_screen_of_text_costs_next_to_nothing(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    server, sid = session(e2e, coturn, browser, LISTING)
    still_screen(server, sid)
    browser.wait("v.track !== undefined && v.video.palette >= 1")
    time.sleep(1.0)  # past the sharpening
    before = browser.page.evaluate(BYTES)[0]
    time.sleep(4.0)
    after = browser.page.evaluate(BYTES)[0]
    assert (after - before) * 8 / 4.0 < 20_000  # bits a second: repeats and receiver reports
    closed(browser)


@needs_x
def test_a_region_named_after_its_track_frame_was_shown_turns_to_video_at_once(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    *_, truth, _ = listing_shown(e2e, coturn, browser)
    browser.page.evaluate(SHOWN_RTP)  # a still screen's track presents its repeats
    browser.page.wait_for_function("() => window.__shownRtp !== undefined", timeout=5000)
    # No frame is presented any more: only the frame already shown can bring the tile on.
    browser.page.evaluate("() => document.getElementById('track').pause()")
    time.sleep(0.3)
    x, y = 64, 64
    assert browser.page.evaluate(ALPHA, [x + 8, y + 8]) == 255  # text, as a palette tile
    browser.page.evaluate(LATE_REGIONS, [x, y, truth.shape[1], truth.shape[0]])
    browser.page.wait_for_function(f"() => ({ALPHA})([{x + 8}, {y + 8}]) === 0", timeout=3000)
    assert browser.page.evaluate(ALPHA, [x + 64 + 8, y + 8]) == 255  # the tile beside stays
    closed(browser)
