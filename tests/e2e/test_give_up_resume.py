"""A terminal that gives up (4106) tells the truth about the session, with real faults.

Gave up on the network (the fault proxy cuts or black-holes the path past the reconnect
window): the session still waits on the server, so the CLI prints the line that resumes it and
the page offers Resume, a new round of resume attempts on the same connection chain; neither
says "session over". The server process killed and not started again: every attempt is refused
by the TCP connect, and both say the server did not accept the connection, not "check your
network" (the log's reconnect.gave_up has all_refused). A resume refused with 4009 (the outage
outlasted idle_timeout) says the session was ended for staying disconnected too long.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from openfrp import codes
from tests.e2e.browser import CHROMIUM, Browser, joined, shown
from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, TerminalProcess
from tests.e2e.test_host_codes import popup

WAITS = {"idle_timeout": 60.0}  # the session outlives the terminal's reconnect window
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)


def run_line(e2e: E2E, line: str) -> TerminalProcess:
    """Run a command line a terminal printed, as the person would paste it."""
    words = shlex.split(line)
    log = Path(words[words.index("--log") + 1])
    process = subprocess.Popen(
        words,
        cwd=e2e.root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    terminal = TerminalProcess(process, log)
    e2e._terminals.append(terminal)  # stopped by PID at teardown
    return terminal


def test_the_cli_gives_up_on_the_network_and_prints_the_line_that_resumes(e2e: E2E) -> None:
    server = e2e.server(account=WAITS)
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    first = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("cut")  # and it stays cut past the reconnect attempts
    said = codes.get(4106).message
    term.wait_line(rf"^could not reconnect: 4106 RECONNECT_FAILED: {re.escape(said)}$", 15)
    waiting = r"^the session may still be waiting \(idle_timeout, 60 s\): to resume it, run: (.+)$"
    line = term.wait_line(waiting).group(1)
    assert term.wait_exit() == 1
    assert f"[4106 RECONNECT_FAILED] {said}" in term.lines
    assert "may still be waiting" in said and "start the session again" not in said
    assert not [text for text in term.lines if text.startswith("session over")]
    gave_up = term.log.wait_event(event="reconnect.gave_up", code=4106)
    assert gave_up["attrs"]["all_refused"] is False  # the path reset them, not the server
    assert server.session(sid)["state"] == "disconnected"

    proxy.control("restore")
    words = shlex.split(line)
    assert words[:2] == [OPENFRP, "connect"] and "--ws-url" in words
    again = run_line(e2e, line)
    again.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$")
    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["previous_connection_id"] == first["connection_id"]
    again.send("close")
    assert again.wait_exit() == 0


@needs_chromium
def test_the_page_gives_up_on_the_network_and_resume_resumes(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(account=WAITS)
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    joined(server, browser, ticket, proxy.port)
    first = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("blackhole")
    browser.wait("v.finalCode === 4106", timeout=20)
    status = browser.page.inner_text("#status")
    assert status.startswith("could not reconnect: 4106 RECONNECT_FAILED"), status
    assert browser.view()["shown"][-1]["text"] == shown(4106)
    waiting = (
        "Your session may still be waiting for you on the server (idle_timeout, 60 s): check "
        "your network, then Resume.\nResume"
    )
    assert browser.popups()[-2:] == [shown(4106), waiting]
    assert browser.page.locator("#resume").count() == 1
    assert server.session(sid)["state"] == "disconnected"

    proxy.control("cut")  # the flows stuck in the black hole reset, then the path is back
    proxy.control("restore")
    browser.page.click("#resume")
    browser.wait("v.state === 'connected (resumed)'", timeout=15)
    assert not [text for text in browser.popups() if text.startswith("[4106 ")]  # gone stale
    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["previous_connection_id"] == first["connection_id"]
    events = browser.view()["events"]
    rounds = [e["attrs"].get("round") for e in events if e["event"] == "reconnect.attempt"]
    assert rounds[-1] == 2 and rounds[0] is None
    succeeded = [e for e in events if e["event"] == "reconnect.succeeded"]
    assert succeeded[-1]["previous_connection_id"] == first["connection_id"]
    assert browser.errors == []


@needs_chromium
def test_a_killed_server_is_named_not_the_network(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(account=WAITS)
    on_cli, on_page = server.launch("alice"), server.launch("bob")
    term = e2e.connected(server, on_cli)
    joined(server, browser, on_page, server.port)

    server.process.kill()  # SIGKILL by PID, and nothing starts it again
    server.process.wait(10)
    said = codes.get(4106).message_for(unreachable=True)
    assert "did not accept the connection" in said and "network" not in said
    term.wait_line(rf"^could not reconnect: 4106 RECONNECT_FAILED: {re.escape(said)}$", 15)
    line = term.wait_line(r"^once the server is back, resume with: (.+)$").group(1)
    assert shlex.split(line)[:2] == [OPENFRP, "connect"]
    assert term.wait_exit() == 1
    assert [text[1:5] for text in term.lines if re.match(r"^\[\d{4} ", text)] == [
        "4102",
        "4103",
        "4103",
        "4103",
        "4106",
    ]
    assert not [text for text in term.lines if "check your network" in text.lower()]
    gave_up = term.log.wait_event(event="reconnect.gave_up", code=4106)
    assert gave_up["attrs"]["all_refused"] is True
    assert "ConnectionRefusedError" in gave_up["attrs"]["last_error"]
    assert gave_up["message"] == said

    browser.wait("v.finalCode === 4106", timeout=15)
    assert browser.view()["shown"][-1]["text"] == f"[4106 RECONNECT_FAILED] {said}"
    assert browser.popups()[-1] == "Once the session server is back, Resume.\nResume"
    assert browser.page.inner_text("#status").startswith("could not reconnect: 4106")
    page_gave_up = [e for e in browser.view()["events"] if e["event"] == "reconnect.gave_up"]
    assert [e["attrs"]["all_refused"] for e in page_gave_up] == [True]


def test_a_resume_refused_with_4009_says_the_outage_outlasted_idle_timeout(e2e: E2E) -> None:
    server = e2e.server(
        account={"idle_timeout": 1.5},
        launchpads={"desktop": {"reconnect_attempts": 30, "reconnect_window": 30.0}},
    )
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)

    proxy.control("cut")
    server.log.wait_event(event="session.ended", code=4009, session_id=sid, timeout=10)
    proxy.control("restore")  # the next attempt reaches the server, which refuses it
    term.wait_line(popup(4009), timeout=10)
    said = codes.get(4106).message_for(4009)
    term.wait_line(rf"^session over: 4106 RECONNECT_FAILED: {re.escape(said)}$")
    assert term.wait_exit() == 1
    assert f"[4106 RECONNECT_FAILED] {said}" in term.lines
    assert "disconnected too long" in said and "(4009 IDLE_TIMEOUT)" in said
    for wrong in ("not the cause", "restarted", "link again", "check your network"):
        assert wrong not in said.lower()
    gave_up = term.log.wait_event(event="reconnect.gave_up", code=4106)
    assert gave_up["attrs"]["refused_code"] == 4009
    assert gave_up["message"] == said
