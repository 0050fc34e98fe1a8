"""A server killed with SIGKILL and started again ends the sessions it left open: 4004 for an
active one, 4001 for one that never started, and removes the home folder of the one that
started; the terminal's resume gets that code and stops at once, its 4106 naming that refusal
(in the Python terminal and the page alike), not the network; the link opened again names it,
and the analyzer calls it a server crash, from the terminal's log alone too. A server stopped
as an operator stops it (SIGTERM) leaves none open: started again, it ends nothing a second
time."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from openfrp import codes
from openfrp.server.isolation import processes_of
from tests.e2e.browser import CHROMIUM, Browser, joined, shown
from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, ServerProcess, bounded, diagnosis, hello_for
from tests.e2e.test_host_codes import popup
from tests.e2e.test_terminal_picture import APP, needs_x
from tests.support.sandbox import needs_root, runs

PAD = {
    "desktop": {"reconnect_attempts": 60, "reconnect_backoff_max": 1.0, "reconnect_window": 60.0}
}


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, bounded, for the registry to hold what the log already says."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the registry did not catch up"
        time.sleep(0.05)


def test_sessions_left_open_by_a_crash_end_when_the_server_starts_again(e2e: E2E) -> None:
    first = e2e.server(launchpads=PAD)
    active = first.launch("alice")
    waiting = first.launch("bob")  # launched, never joined
    term = e2e.connected(first, active)
    root = first.root
    _until(lambda: first.session(active["session_id"])["state"] == "active")
    account = first.log.wait_event(event="session.account", session_id=active["session_id"])
    home = Path(account["attrs"]["home"])  # made when the session started
    assert home.is_dir()

    first.process.kill()  # SIGKILL by PID: no session gets to end
    first.process.wait(10)
    term.wait_line(popup(4102), timeout=10)

    again = ServerProcess.start(root, launchpads=PAD, port=first.port)
    try:
        ended = again.log.wait_event(event="session.ended", session_id=active["session_id"])
        assert ended["code"] == 4004
        assert "crash" in ended["attrs"]["reason"]
        assert ended["attrs"]["state_at_crash"] in ("active", "disconnected")
        never = again.log.wait_event(event="session.ended", session_id=waiting["session_id"])
        assert never["code"] == 4001 and never["attrs"]["state_at_crash"] == "created"
        assert not home.exists()  # what the person left there is gone
        assert again.session(active["session_id"])["final_code"] == 4004

        # The terminal that was reconnecting is refused with that code and stops at once; its
        # last word and its log line name the refusal, not the network.
        term.wait_line(popup(4004), timeout=15)
        refused = codes.get(4106).message_for(4004)
        assert "(4004 SERVER_CONTROL_ERROR)" in refused
        term.wait_line(rf"^session over: 4106 RECONNECT_FAILED: {re.escape(refused)}$", timeout=5)
        assert f"[4106 RECONNECT_FAILED] {refused}" in term.lines
        assert not [line for line in term.lines if "Check your network" in line]
        gave_up = term.log.wait_event(event="reconnect.gave_up", code=4106)
        assert gave_up["attrs"]["refused_code"] == 4004
        assert gave_up["attrs"]["refused_reason"] == "SERVER_CONTROL_ERROR (session ended)"
        assert gave_up["message"] == refused
        # The terminal's log alone says the same: the server came back without the session.
        alone = diagnosis(active["session_id"], term.log)
        assert (alone["category"], alone["disconnects"], alone["recovered"]) == (
            "server_crash",
            1,
            False,
        )

        # A raw resume and the link opened again both name the code, not "unknown session".
        raw = e2e.raw(again.ws_url)
        raw.send(hello_for(active, resume=True))
        assert raw.wait_closed() == 4004
        late = e2e.terminal(active["connect_url"], name="late", stdin=False)
        late.wait_line(popup(4004), timeout=10)

        logs = [str(p) for p in sorted((root / "data" / "logs").glob("*.jsonl"))]
        report = subprocess.run(
            [OPENFRP, "analyze", *logs, "--json", "--session", active["session_id"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        assert (data["session"]["category"], data["session"]["final_code"]) == (
            "server_crash",
            4004,
        )
    finally:
        again.stop()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_the_page_names_the_refusal_of_a_restarted_server(e2e: E2E, browser: Browser) -> None:
    """The browser terminal's resume, refused by the server started again (4004, session
    ended): its 4106 pop-up and its log line name the refusal, as `openfrp connect` does."""
    first = e2e.server(launchpads=PAD)
    ticket = first.launch("alice")
    joined(first, browser, ticket, first.port)
    _until(lambda: first.session(ticket["session_id"])["state"] == "active")
    first.process.kill()  # SIGKILL by PID
    first.process.wait(10)
    browser.wait("v.shown.some((s) => s.code === 4102)", timeout=10)

    again = ServerProcess.start(first.root, launchpads=PAD, port=first.port)
    try:
        browser.wait("v.finalCode === 4106", timeout=20)
        refused = f"[4106 RECONNECT_FAILED] {codes.get(4106).message_for(4004)}"
        assert [s["text"] for s in browser.view()["shown"]][-2:] == [shown(4004), refused]
        assert [text for text in browser.popups() if text.startswith(refused)]
        assert not [text for text in browser.popups() if "Check your network" in text]
        view = browser.view()
        gave_up = [e for e in view["events"] if e["event"] == "reconnect.gave_up"]
        assert [e["attrs"]["refused_code"] for e in gave_up] == [4004]
        assert gave_up[0]["attrs"]["refused_reason"] == "SERVER_CONTROL_ERROR (session ended)"
        assert browser.page.inner_text("#status").startswith("session over: 4106 RECONNECT_FAILED")
        assert browser.errors == []
    finally:
        again.stop()


def test_a_clean_restart_ends_nothing(e2e: E2E, tmp_path: Path) -> None:
    first = e2e.server()
    ticket = first.launch("alice")
    term = e2e.connected(first, ticket)
    term.send("close")
    first.log.wait_event(event="session.ended", code=4000)
    _until(lambda: first.session(ticket["session_id"])["final_code"] == 4000)
    first.stop()
    again = ServerProcess.start(first.root, port=first.port)
    try:
        time.sleep(0.5)
        ended = again.log.find(event="session.ended", session_id=ticket["session_id"])
        assert [e["code"] for e in ended] == [4000]  # only the real end, logged once
    finally:
        again.stop()


@needs_x
def test_sessions_ended_by_a_clean_stop_are_not_ended_again_as_a_crash(e2e: E2E) -> None:
    """The end is in the registry before the server leaves: a session waiting for its
    terminal, with a real display (whose teardown the stopping server does not wait for), is
    recorded ended with 4019."""
    pads = {"x": {"app_command": APP, "display_ready_timeout": 10.0}}
    first = e2e.server(server={"display": "xvfb"}, launchpads=pads)
    ticket = first.launch("alice", "x")
    sid = ticket["session_id"]
    term = e2e.connected(first, ticket)
    _until(lambda: first.session(sid)["state"] == "active")
    term.process.kill()  # by PID: the session waits for a resume, no connection keeps the
    term.process.wait(10)  # server serving while it stops
    first.log.wait_event(event="session.disconnected", session_id=sid)
    first.signal(signal.SIGTERM)
    assert first.wait_exit(timeout=15) == 0

    again = ServerProcess.start(first.root, server={"display": "xvfb"}, launchpads=pads)
    try:
        assert again.session(sid)["final_code"] == 4019
        ended = again.log.find(event="session.ended", session_id=sid)
        assert [(e["code"], e["attrs"]["reason"]) for e in ended] == [
            (4019, "server received SIGTERM")
        ]
    finally:
        again.stop()


@needs_x
@needs_root
def test_a_killed_servers_display_and_app_end_with_it_and_the_next_start_clears_up(
    e2e: E2E,
) -> None:
    """The display server and the app get SIGTERM when the server process dies, so nothing
    of the session runs on; started again at once, the server removes the display's folder
    (no live server holds it) and the session's home."""
    pads = {"x": {"app_command": "sleep 600", "display_ready_timeout": 10.0}}
    first = e2e.server(server={"display": "xvfb"}, launchpads=pads)
    ticket = first.launch("alice", "x")
    sid = ticket["session_id"]
    e2e.connected(first, ticket)
    _until(lambda: first.session(sid)["state"] == "active")  # recorded, so 4004 at restart
    xvfb = first.log.wait_event(event="display.ready", session_id=sid)["attrs"]["pid"]
    account = first.log.wait_event(event="session.account", session_id=sid)["attrs"]
    args = Path(f"/proc/{xvfb}/cmdline").read_bytes().decode().split("\0")
    fbdir = Path(args[args.index("-fbdir") + 1])
    assert runs(xvfb) and processes_of(account["uid"])  # the display and the app

    first.process.kill()  # SIGKILL by PID: the server ends nothing itself
    first.process.wait(10)
    for _ in bounded(10.0):
        if not runs(xvfb) and not processes_of(account["uid"]):
            break
    assert not runs(xvfb) and not processes_of(account["uid"])
    assert fbdir.is_dir()  # until a server starts, however soon

    again = ServerProcess.start(first.root, server={"display": "xvfb"}, launchpads=pads)
    try:
        ended = again.log.wait_event(event="session.ended", session_id=sid)
        assert ended["code"] == 4004
        assert not fbdir.exists() and not Path(account["home"]).exists()
    finally:
        again.stop()
