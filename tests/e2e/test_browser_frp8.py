"""The browser terminal over FRP8: headless Chromium's own WebRTC against the server's aiortc
peer, relay-only through a real coturn on loopback (as in test_frp8.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from openfrp.analysis import sessions
from tests.e2e.browser import CHROMIUM, Browser, joined, link, screenshot, shown
from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.support.coturn import TURNSERVER, Coturn, start_coturn

pytestmark = pytest.mark.skipif(
    TURNSERVER is None or not CHROMIUM.exists(), reason="needs coturn and Debian chromium"
)


def test_browser_joins_over_webrtc_streams_and_closes(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("alice", "rtc")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    opened = server.log.wait_event(event="connection.opened", session_id=sid)
    assert opened["attrs"]["frp"] == 8
    browser.wait("v.track !== undefined && v.track.frames >= 3")  # the display's video track
    probes = [e for e in browser.view()["events"] if e["event"] == "probe.turn"]
    assert [p["code"] for p in probes] == [None]  # the relay answered: no 5010 for it
    assert not [s for s in browser.view()["shown"] if s["code"] in (5009, 5010, 5019)]
    assert server.push(sid, {"over": "webrtc"}).status == 202
    browser.wait("v.received.length === 1")
    browser.menu("close-session")
    browser.wait("v.finalCode === 4000")
    server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    shipped = server.log.wait_event(event="connection.established", source="terminal")
    assert (shipped["frp"], shipped["attrs"]["client"]) == (8, "browser")
    assert browser.errors == []
    rows = (
        sessions.analyze([str(server.log.path)])
        .con.execute(
            "SELECT frp, client, final_code, category FROM sessions WHERE session_id = ?", [sid]
        )
        .fetchall()
    )
    assert rows == [(8, "browser", 4000, "expected_end")]


def test_browser_relay_lost_is_4108_then_resumed(
    e2e: E2E, coturn: Coturn, browser: Browser, tmp_path: Path
) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("bob", "rtc")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    coturn.stop()
    browser.wait("v.shown.some((s) => s.code === 4108)", timeout=10)
    assert any(shown(4108) in text for text in browser.popups())
    (tmp_path / "again").mkdir()
    back = start_coturn(tmp_path / "again", port=coturn.port)
    try:
        browser.wait("v.state === 'connected (resumed)'", timeout=30)
        server.log.wait_event(event="session.resumed", session_id=sid)
        lost = server.log.wait_event(event="ice.disconnected", source="terminal", timeout=10)
        assert lost["code"] == 4108 and lost["session_id"] == sid
        # Shipped by the page once it is back: it may land after the resume.
        attempt = server.log.wait_event(event="reconnect.attempt", source="terminal")
        assert attempt["code"] == 4103
    finally:
        back.stop()
    assert browser.errors == []


def test_browser_setup_failure_shows_its_code(e2e: E2E, browser: Browser, tmp_path: Path) -> None:
    """A relay that will not reach the peers: the page ends the first connection with 5006."""
    closed = start_coturn(tmp_path, loopback_peers=False)
    try:
        server = frp8_server(e2e, closed)
        ticket = server.launch("carol", "rtc")
        browser.page.goto(
            f"http://127.0.0.1:{server.port}/s/{ticket['session_id']}?token={ticket['token']}"
        )
        browser.wait("v.finalCode === 5006", timeout=20)
        assert any(shown(5006) in text for text in browser.popups())
        failed = [e for e in browser.view()["events"] if e["event"] == "ice.failed"]
        assert failed and failed[0]["attrs"]["phase"] == "connecting"
    finally:
        closed.stop()


def test_browser_wrong_turn_password_says_5010_before_5006(
    e2e: E2E, coturn: Coturn, browser: Browser, tmp_path: Path
) -> None:
    """Chromium reports the TURN server's 401 while gathering: the page says 5010 (with the
    cause) the way the Python terminal's probe does, then ICE without a relay fails (5006)."""
    server = frp8_server(e2e, coturn, turn_password="not-the-password")
    ticket = server.launch("judy", "rtc")
    browser.page.goto(
        f"http://127.0.0.1:{server.port}/s/{ticket['session_id']}?token={ticket['token']}"
    )
    browser.wait("v.finalCode === 5006", timeout=25)
    codes = [s["code"] for s in browser.view()["shown"]]
    assert codes.index(5010) < codes.index(5006)
    probe = [e for e in browser.view()["events"] if e["event"] == "probe.turn"]
    assert probe and probe[0]["code"] == 5010 and "401" in probe[0]["attrs"]["error"]
    assert probe[0]["attrs"]["server"].startswith("turn:127.0.0.1:")
    # The code's pop-up says which server failed and why, and what to do about it.
    [text] = [t for t in browser.popups() if t.startswith(shown(5010))]
    server = probe[0]["attrs"]["server"]
    assert f"TURN {server} failed: credentials rejected (401): check the TURN user" in text
    assert "next step: Check the TURN URL, its credentials" in text
    screenshot(browser, tmp_path / "turn-401.png")


def test_browser_says_5010_when_the_turn_server_never_answers(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    """UDP to the relay goes nowhere (a socket that swallows every packet): Chromium reports
    neither a candidate nor an error, and the page still reaches the verdict the Python
    terminal's probe would (5010, no answer), before ICE fails (5006)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        server = frp8_server(e2e, coturn, turn_url=f"turn:127.0.0.1:{port}?transport=udp")
        ticket = server.launch("walt", "rtc")
        browser.page.goto(
            f"http://127.0.0.1:{server.port}/s/{ticket['session_id']}?token={ticket['token']}"
        )
        browser.wait("v.finalCode === 5006", timeout=30)
    codes = [s["code"] for s in browser.view()["shown"]]
    assert 5010 in codes and codes.index(5010) < codes.index(5006), codes
    probe = [e for e in browser.view()["events"] if e["event"] == "probe.turn"]
    assert probe and probe[0]["code"] == 5010
    assert probe[0]["attrs"]["error"] == "no answer while gathering candidates"
    failed = [e for e in browser.view()["events"] if e["event"] == "ice.failed"]
    assert failed and failed[0]["attrs"]["candidates"].get("relay", 0) == 0


def test_browser_falls_back_to_frp7(e2e: E2E, browser: Browser, tmp_path: Path) -> None:
    """frp8_fallback = "frp7": the page shows 5006, says it goes on over the WebSocket, and
    the session works there (video, close with 4000)."""
    closed = start_coturn(tmp_path, loopback_peers=False)
    try:
        server = frp8_server(e2e, closed, launchpad={**FRP8_PAD, "frp8_fallback": "frp7"})
        ticket = server.launch("kim", "rtc")
        sid = ticket["session_id"]
        joined(server, browser, ticket, server.port)
        assert [s["code"] for s in browser.view()["shown"]] == [5006]
        # Connected over FRP7, one note says what happened instead of the red 5006 staying.
        popups = browser.popups()
        assert len(popups) == 1 and "(5006 ICE_FAILED): the session goes on over FRP7" in popups[0]
        opened = server.log.wait_event(event="connection.opened", session_id=sid)
        assert opened["attrs"]["frp"] == 7
        browser.wait("v.frames >= 2")
        # A reload of the tab goes over FRP7 at once: FRP8 is not tried, and fails, again.
        browser.page.reload()
        browser.wait("v.state === 'connected (resumed)'", timeout=8)
        assert browser.view()["shown"] == []
        assert len(server.log.find(event="transport.fallback", source="terminal")) == 1
        browser.wait("v.frames >= 2")
        browser.menu("close-session")
        browser.wait("v.finalCode === 4000")
        fallback = server.log.wait_event(event="transport.fallback", source="terminal")
        assert fallback["code"] == 5006 and fallback["session_id"] == sid
    finally:
        closed.stop()


def test_a_closed_tab_leaves_the_session_to_be_resumed_at_once(
    e2e: E2E, coturn: Coturn, browser: Browser
) -> None:
    """Closing the tab is a disconnect: the server hears it at once, so the link opened again
    resumes (it was refused with 4006 for the closed tab's 30 s of receive timeouts, which
    then ended its connection with 4023, a network loss)."""
    server = frp8_server(e2e, coturn)
    ticket = server.launch("dave", "rtc")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    chromium = browser.page.context.browser
    assert chromium is not None
    browser.page.close(run_before_unload=True)
    left = server.log.wait_event(event="session.disconnected", session_id=sid, timeout=5)
    assert left["code"] is None and left["attrs"]["reason"] == "terminal disconnect"
    again = Browser(chromium.new_page())
    again.page.goto(link(ticket, server.port))
    again.wait("v.state === 'connected (resumed)'")
    assert server.log.find(event="connection.rejected", session_id=sid) == []
    again.menu("close-session")
    again.wait("v.finalCode === 4000")
    assert again.errors == []
