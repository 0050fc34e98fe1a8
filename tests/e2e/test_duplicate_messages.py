"""4006 as the person meets it: the session goes on elsewhere, so no "session over".

A newcomer refused because the person's other device still holds the live connection (its
network died without a word: the fault proxy black-holes it) is told what happened and what to
do: close the other device, or wait for the server to let that connection go after
max_receive_timeouts x receive_timeout, and the CLI exits 1 (refused: it joined nothing). A
terminal displaced by a takeover is told where its session went and how to take it back.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.browser import CHROMIUM, Browser, link, shown
from tests.e2e.conftest import E2E
from tests.e2e.test_give_up_resume import run_line
from tests.e2e.test_host_codes import popup

# The server holds a silent connection for max_receive_timeouts x receive_timeout: the
# defaults, which the terminals name while the ticket does not carry them; the laptop keeps
# trying long enough to come back when its path does.
PAD = {
    "receive_timeout": 10.0,
    "max_receive_timeouts": 3,
    "reconnect_attempts": 30,
    "reconnect_window": 60.0,
}
HOLDING = (  # the session's own values, which the ticket carries
    "the server lets its connection go after 30 s (max_receive_timeouts times receive_timeout) "
    "without hearing from it"
)


def test_refused_by_a_dead_device_says_what_to_do_and_exits_1(e2e: E2E) -> None:
    server = e2e.server(launchpads={"desktop": PAD})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    laptop = e2e.connected(server, ticket, proxy, name="laptop")
    live = server.log.wait_event(event="connection.established", session_id=sid)
    proxy.control("blackhole")  # the laptop's network dies without a word

    phone = e2e.terminal(ticket["connect_url"], name="phone")
    phone.wait_line(popup(4006))
    phone.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION: Another tab or device of yours")
    step = phone.wait_line(r"^not let in: (.+): (\S+ connect .+)$")
    assert phone.wait_exit() == 1
    assert step.group(1).startswith("close the session's other tab or device, then connect again")
    assert HOLDING in step.group(1)
    assert not [line for line in phone.lines if line.startswith("session over")]
    rejected = server.log.wait_event(event="connection.rejected", code=4006, session_id=sid)
    assert rejected["attrs"]["live_connection_id"] == live["connection_id"]

    # What it says works: the laptop, back, closes its side; the printed line gets in.
    proxy.control("cut")
    proxy.control("restore")
    laptop.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=15)
    laptop.send("disconnect")
    assert laptop.wait_exit() == 0
    again = run_line(e2e, step.group(2))
    again.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$")
    again.send("close")
    assert again.wait_exit() == 0


def test_displaced_by_a_takeover_says_where_the_session_went(e2e: E2E) -> None:
    server = e2e.server(launchpads={"desktop": {"duplicate_policy": "takeover"}})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    older = e2e.connected(server, ticket, name="older")
    newer = e2e.connected(server, ticket, name="newer")

    older.wait_line(popup(4006))
    older.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION: ")
    line = older.wait_line(r"^it goes on there; to take it back here, run: (\S+ connect .+)$")
    assert older.wait_exit() == 0  # it was in the session, which goes on
    assert not [text for text in older.lines if text.startswith("session over")]
    server.push(sid, {"still": "newer"})
    newer.wait_line(r'^msg 1 \{"still": "newer"\}$')
    assert re.search(r"#token=", line.group(1))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_the_page_refused_by_a_dead_device_says_what_to_do(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(launchpads={"desktop": PAD})
    ticket = server.launch("alice")
    proxy = e2e.proxy(server.port)
    e2e.connected(server, ticket, proxy, name="laptop")
    proxy.control("blackhole")

    browser.page.goto(link(ticket, server.port))
    browser.wait("v.finalCode === 4006")
    assert browser.page.inner_text("#status").startswith("open elsewhere: 4006")
    said = browser.popups()
    assert said[0] == shown(4006)
    assert said[1].startswith("Another tab or device of yours holds this session's live")
    assert "Close it there, then open this link again here" in said[1]
    assert HOLDING in said[1] and said[1].endswith("\nOpen it here")
    assert not [text for text in said if "session is over" in text]
    assert browser.errors == []
