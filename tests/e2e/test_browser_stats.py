"""The browser terminal's stream figures over FRP8, where the display is a WebRTC video track:
the stats overlay and the `stats` events count the track's frames and bytes."""

from __future__ import annotations

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E, frp8_server
from tests.support.coturn import TURNSERVER, Coturn

pytestmark = pytest.mark.skipif(
    TURNSERVER is None or not CHROMIUM.exists(), reason="needs coturn and Debian chromium"
)


def test_frp8_stats_count_the_video_track(e2e: E2E, coturn: Coturn, browser: Browser) -> None:
    server = frp8_server(e2e, coturn, display="synthetic", video_fps=10)
    ticket = server.launch("alice", "rtc")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    browser.wait("v.track !== undefined && v.track.frames >= 3 && v.track.codec !== null")
    browser.menu("stats-toggle")
    page = browser.page
    page.wait_for_function("() => Number(document.getElementById('stats').dataset.fps) > 2")
    track = browser.view()["track"]
    assert f"{track['codec']} {track['width']}x{track['height']}" in page.inner_text("#stats")
    named = server.log.wait_event(event="stream.decoder", source="terminal", session_id=sid)
    assert named["attrs"] == {"codec": track["codec"], "track": True}
    browser.menu("close-session")
    browser.wait("v.finalCode === 4000")
    final = server.log.wait_event(event="stats", source="terminal", session_id=sid)["attrs"]
    assert final["final"] is True and final["codec"] == track["codec"]
    assert final["fps"] > 2 and final["frames"] >= 3 and final["mbit_s"] > 0
    assert browser.errors == []
