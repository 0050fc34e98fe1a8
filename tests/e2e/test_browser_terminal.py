"""The browser terminal in headless Chromium against a real server (and the fault proxy).

The connect link opens the page; it joins the session, draws the video, shows every code as a
pop-up worded by the code table, reconnects and resumes after a path fault, and ships its
events to the server's log.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from openfrp.analysis import sessions
from tests.e2e.browser import CHROMIUM, Browser, joined, link, screenshot, shown
from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, bounded

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)


def test_join_video_messages_and_close(e2e: E2E, browser: Browser) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    established = server.log.wait_event(event="connection.established", session_id=sid)
    assert established["attrs"]["client"] == "browser"
    browser.wait("v.frames >= 3")
    assert server.push(sid, {"hello": "browser"}).status == 202
    browser.wait("v.received.length === 1")
    assert browser.view()["received"] == [{"seq": 1, "body": {"hello": "browser"}}]
    # The page shipped its own events once connected: the server's log holds them.
    shipped = server.log.wait_event(event="connection.established", source="terminal")
    assert shipped["session_id"] == sid and shipped["attrs"]["client"] == "browser"

    # "Save log": the page's own event log as JSON Lines, for a support ticket.
    browser.menu("save-log")
    saved = browser.page.evaluate(
        "async () => await (await fetch(document.getElementById('save-log').href)).text()"
    )
    lines = [json.loads(line) for line in saved.splitlines()]
    assert [e["event"] for e in lines[:2]] == ["connect.attempt", "connection.established"]
    assert {e["session_id"] for e in lines} == {sid}

    browser.menu("close-session")
    browser.wait("v.finalCode === 4000")
    assert shown(4000) in browser.popups()[-2]
    server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    assert browser.page.inner_text("#status").startswith("session over: 4000 USER_CLOSED")
    assert browser.errors == []
    assert [line for line in browser.console if line.startswith("error")] == []
    # The analyzer reads the session from the server's log alone, browser side included.
    analysis = sessions.analyze([str(server.log.path)])
    row = analysis.con.execute(
        "SELECT client, category, final_code FROM sessions WHERE session_id = ?", [sid]
    ).fetchall()
    assert row == [("browser", "expected_end", 4000)]


def test_blackholed_path_shows_4102_then_resumes(e2e: E2E, browser: Browser) -> None:
    server = e2e.server()
    ticket = server.launch("bob")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    joined(server, browser, ticket, proxy.port)  # page, API and WebSocket through the proxy
    first = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("blackhole")
    browser.wait("v.shown.some((s) => s.code === 4102)", timeout=8)
    browser.wait("v.shown.some((s) => s.code === 4103)", timeout=8)
    assert shown(4102) in browser.popups()
    server.log.wait_event(event="connection.closed", code=4023, session_id=sid, timeout=8)
    # The attempt made into the black hole is still opening: the page must give it up (a
    # browser runs one WebSocket handshake per server at a time) for the next one to pass.
    proxy.control("restore")
    browser.wait("v.state === 'connected (resumed)' && v.paused === false", timeout=15)
    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["previous_connection_id"] == first["connection_id"]
    lost = server.log.wait_event(event="connection.lost", code=4102, source="terminal")
    assert lost["session_id"] == sid and lost["connection_id"] == first["connection_id"]
    server.log.wait_event(event="reconnect.attempt", code=4103, source="terminal")
    server.log.wait_event(event="reconnect.succeeded", source="terminal", session_id=sid)
    assert server.push(sid, {"after": "resume"}).status == 202
    browser.wait("v.received.length === 1")
    assert browser.errors == []


def test_a_link_that_cannot_be_used_says_what_to_do_next(e2e: E2E, browser: Browser) -> None:
    """The page and `openfrp connect` both show the refusal and the next step the server gives."""
    server = e2e.server()
    ticket = server.launch("carol")
    head, _, signature = ticket["token"].rpartition(".")
    changed = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = {**ticket, "token": f"{head}.{changed}"}
    other = {**ticket, "session_id": "s-0000000000000000"}  # a real token, another session
    for wrong, error, step in (
        (forged, "invalid token", "Ask whoever sent you this link for a new one."),
        (other, "no session 's-0000000000000000'", "Check that the link was copied whole"),
    ):
        browser.page.goto(link(wrong, server.port))
        browser.wait("v.state === 'cannot join'")
        [text] = browser.popups()
        assert text.startswith(error) and step in text
        joining = subprocess.run(
            [OPENFRP, "connect", link(wrong, server.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert joining.returncode == 1 and joining.stdout == ""
        [line] = joining.stderr.splitlines()  # one line: what was wrong, then what to do
        assert line.startswith("openfrp connect: GET ") and error in line and step in line
    assert browser.errors == []


def _lower_left(browser: Browser) -> float:
    """The mean brightness of the lower left quarter of the page, where nothing floats."""
    shot = screenshot(browser)
    return float(shot[shot.shape[0] // 2 :, : shot.shape[1] // 2].mean())


def test_reconnecting_dims_the_screen_and_counts_attempts_in_one_pop_up(
    e2e: E2E, browser: Browser
) -> None:
    """While the session cannot be reached the screen is the last picture and takes no input:
    the page dims it, and each attempt's 4103 counts in one pop-up instead of stacking."""
    pad = {"reconnect_backoff_max": 0.5, "reconnect_attempts": 20}  # still trying when looked at
    server = e2e.server(launchpads={"desktop": pad})
    ticket = server.launch("dave")
    joined(server, browser, ticket, server.port)
    browser.wait("v.frames >= 3 && v.paused === false")
    live = _lower_left(browser)
    server.process.kill()  # by PID: every attempt is refused at once
    browser.wait("v.shown.filter((s) => s.code === 4103).length >= 3", timeout=15)
    attempts = [text for text in browser.popups() if text.startswith(shown(4103))]
    assert len(attempts) == 1 and attempts[0].startswith(f"{shown(4103)} (\u00d7")
    assert browser.view()["paused"] is True
    title = browser.page.title()  # seen from another tab, with how many attempts are left
    assert re.match(r"reconnecting \(attempt \d+ of 20\) · openfrp session$", title), title
    time.sleep(0.5)  # the dimming's own transition
    assert live > 20 and _lower_left(browser) < 0.6 * live
    assert browser.errors == []


def test_the_link_opened_in_a_second_tab_says_where_the_session_goes_on(
    e2e: E2E, browser: Browser
) -> None:
    """4006 (refused: the session is live in the first tab) ends the second tab's part only,
    and the page says so: not "session over"."""
    server = e2e.server()
    ticket = server.launch("erin")
    joined(server, browser, ticket, server.port)
    second = Browser(browser.page.context.browser.new_page())  # another tab, or device
    second.page.goto(link(ticket, server.port))
    second.wait("v.finalCode === 4006")
    assert second.page.inner_text("#status").startswith("open elsewhere: 4006 ALREADY_IN_SESSION")
    assert second.popups() == [
        shown(4006),
        "Another tab or device of yours holds this session's live connection. Close it there, "
        "then open this link again here; if it is off or lost its network, the server lets its "
        "connection go after 1.2 s (max_receive_timeouts times receive_timeout) without "
        "hearing from it: then try again here.\nOpen it here",
    ]
    rejected = server.log.wait_event(event="connection.rejected", code=4006)
    assert rejected["session_id"] == ticket["session_id"]
    assert browser.view()["state"] == "connected" and "finalCode" not in browser.view()
    assert browser.errors == [] and second.errors == []
    # The first tab closed, the second takes the session up in one click.
    browser.page.close()
    server.log.wait_event(event="session.disconnected", session_id=ticket["session_id"])
    second.page.click("#resume")
    second.wait("v.state === 'connected (resumed)' && v.frames > 0")
    assert second.errors == []


def test_closed_from_outside_then_the_link_says_how_it_ended(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(server={"forget_ended_after": 1})
    ticket = server.launch("carol")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    assert server.api("DELETE", f"/api/sessions/{sid}").status in (200, 202)
    browser.wait("v.finalCode === 4019")
    assert shown(4019) in browser.popups()

    over = "This session is over: ask whoever sent you the link for a new session."
    browser.page.reload()  # the link again while the server still holds the ended session:
    browser.wait("v.finalCode === 4019")  # its token gets the final code, not a ticket
    assert browser.popups() == [f"{shown(4019)}\n{over}"]  # and what to do next
    assert browser.view()["state"] == "session over"
    assert server.api("GET", f"/api/sessions/{sid}/ticket", key=ticket["token"]).status == 410

    for _ in bounded(5.0):  # past forget_ended_after: the registry answers for the session
        if server.api("GET", f"/api/sessions/{sid}/ticket").status == 410:
            break
    browser.page.reload()
    browser.wait("v.state === 'session over'")
    assert browser.view()["finalCode"] == 4019
    assert browser.popups() == [f"{shown(4019)}\n{over}"]
    assert browser.errors == []


def test_a_revoke_ends_the_page_with_a_4002_pop_up(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(account={"idle_timeout": 30.0})
    ticket = server.launch("rose")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    assert server.api("POST", f"/api/sessions/{sid}/revoke").status == 200
    browser.wait("v.finalCode === 4002")
    assert shown(4002) in browser.popups()
    assert not [text for text in browser.popups() if text.startswith("[4103 ")]  # no retry
    closed = server.log.wait_event(event="connection.closed", code=4002, session_id=sid)
    assert closed["attrs"]["reason"] == "tokens revoked by the admin API"
    assert browser.errors == []


def test_events_of_a_page_closed_offline_are_shipped_by_the_next(
    e2e: E2E, browser: Browser
) -> None:
    """The page keeps unshipped events across a reload, so what it saw offline still reaches
    the server's log when the link is opened again."""
    server = e2e.server(launchpads={"desktop": {"reconnect_attempts": 0}})
    ticket = server.launch("erin")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    joined(server, browser, ticket, proxy.port)
    proxy.control("blackhole")
    browser.wait("v.finalCode === 4106", timeout=8)  # no reconnect allowed: gave up at once
    assert not server.log.find(event="reconnect.gave_up", source="terminal")
    browser.page.goto("about:blank")  # the person closes the page while offline
    server.log.wait_event(event="session.disconnected", code=4023, session_id=sid, timeout=8)
    # The path returns with the flows stuck in the black hole reset (as a NAT that lost its
    # state does): otherwise the browser's idle keep-alive connections would carry the page
    # load into the void.
    proxy.control("cut")
    proxy.control("restore")

    joined(server, browser, ticket, proxy.port)
    gave_up = server.log.wait_event(event="reconnect.gave_up", code=4106, source="terminal")
    assert gave_up["session_id"] == sid
    server.log.wait_event(event="connection.lost", code=4102, source="terminal")
    assert browser.errors == []


def test_the_bar_shrinks_to_its_gear_while_connected_and_shows_whole_otherwise(
    e2e: E2E, browser: Browser
) -> None:
    """Connected a while, the bar hides little of the desktop's top right corner (where
    windows keep their buttons); hovered, or any other status, it shows whole."""
    server = e2e.server(server={"display": "synthetic", "video_fps": 5})
    ticket = server.launch("gina")
    page = browser.page
    page.add_init_script("window.openfrpCompactAfterMs = 300")
    joined(server, browser, ticket, server.port)

    def bar_width() -> float:
        box = page.locator("#bar").bounding_box()
        assert box is not None
        return float(box["width"])

    page.wait_for_selector("#bar.compact")
    page.mouse.move(10, 300)
    compact = bar_width()
    assert not page.is_visible("#status") and page.text_content("#status") == "connected"
    page.hover("#gear")
    whole = bar_width()
    assert page.is_visible("#status") and compact < 60 < whole
    page.mouse.move(10, 300)
    assert bar_width() == pytest.approx(compact, abs=1)
    browser.menu("disconnect")
    browser.wait("v.state === 'disconnected'")
    page.mouse.move(10, 300)
    assert page.is_visible("#status") and page.inner_text("#status") == "disconnected"
    assert browser.errors == []


def test_the_end_of_session_warning_counts_down_and_goes_at_the_end(
    e2e: E2E, browser: Browser
) -> None:
    """4008 ahead: the pop-up says how long is left as it goes, not the figure it came
    with, and does not stay beside the end it announced."""
    pad = {"max_session_duration": 7.0, "warn_before": 5.0}
    server = e2e.server(server={"display": "synthetic", "video_fps": 2}, launchpads={"short": pad})
    ticket = server.launch("hugo", "short")
    joined(server, browser, ticket, server.port)
    page = browser.page
    page.wait_for_selector("#popups .popup.warning")

    def left() -> int:
        [text] = browser.popups()
        return int(text.split("will end in ")[1].split(" s")[0])

    first = left()
    assert 1 < first <= 5
    page.wait_for_timeout(2200)
    assert left() <= first - 2
    browser.wait("v.finalCode === 4008", timeout=10)
    popups = browser.popups()
    assert not any("will end in" in text for text in popups), popups
    assert popups[0] == shown(4008)
    assert browser.errors == []
