"""A paste too large to cross is refused by the terminal it was pasted in, in the server's
words, and the connection stays: both terminals against a real server with a real Xvfb.

Text over the session's clipboard_limit, or too large for one control message (256 KiB of
JSON), was sent anyway: the server could not read a message over its bound and dropped the
connection with 4024 ("data it could not understand from your device"), the terminal
reconnected, the paste key was lost and the analyzer counted a mid-session loss.
"""

from __future__ import annotations

import shutil

import pytest

from openfrp.protocol.messages import MAX_MESSAGE_BYTES
from openfrp.sizes import size_text
from tests.e2e.browser import CHROMIUM, joined
from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, hello_for
from tests.e2e.test_browser_desk import chromium_page, copy_then_ctrl_v, session_x
from tests.support.xselection import XApp, read_cookie

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
PAD = {"idle_timeout": 30.0, "display_ready_timeout": 10.0, "app_command": "sleep 60"}
LIMIT = 64 * 1024
OVER_LIMIT = f"over the size limit of {size_text(LIMIT)}"
OVER_MESSAGE = f"over the message limit of {size_text(MAX_MESSAGE_BYTES)}"


def limits_server(e2e: E2E) -> ServerProcess:
    """`small`: the default limit; `large`: a limit one control message cannot carry."""
    return e2e.server(
        server={"display": "xvfb", "video_fps": 2},
        launchpads={
            "small": {**PAD, "clipboard_limit": LIMIT},
            "large": {**PAD, "clipboard_limit": 4 * 1024 * 1024},
        },
    )


def kept(server: ServerProcess, sid: str, refusals: list[tuple[int, str]]) -> None:
    """The terminal's refusals reached the server's log at once (within 5 s: a terminal that
    shipped its events with its stats took 10 s), which has no loss and no transfer of them."""
    server.log.wait_event(event="clipboard.refused", session_id=sid, count=len(refusals), timeout=5)
    told = server.log.find(event="clipboard.refused", session_id=sid, source="terminal")
    assert [(e["attrs"]["bytes"], e["attrs"]["reason"]) for e in told] == refusals
    assert all(e["attrs"]["direction"] == "to_session" for e in told)
    assert not server.log.find(event="clipboard.refused", session_id=sid, source="server")
    assert not server.log.find(event="session.disconnected", session_id=sid)
    assert not server.log.find(session_id=sid, code=4024)


def test_the_python_terminal_refuses_a_paste_too_large_and_stays_connected(e2e: E2E) -> None:
    server = limits_server(e2e)
    for pad, text, reason in (
        ("small", "x" * 300_000, OVER_LIMIT),
        ("small", "x" * (LIMIT + 1), OVER_LIMIT),
        # 200 KB of UTF-8 is under this limit, but 600 KB once escaped in one message.
        ("large", "é" * 100_000, OVER_MESSAGE),
    ):
        ticket = server.launch("alice", pad)
        sid = ticket["session_id"]
        term = e2e.terminal(ticket["connect_url"], name=pad)
        term.wait_line(rf"^connected to {sid} as c-")
        server.log.wait_event(event="session.started", session_id=sid, timeout=15)
        term.send(f"paste {text}")
        term.wait_line(rf"^clipboard to the session refused: {reason}$")
        size = len(text.encode())
        told = term.log.wait_event(event="clipboard.refused")
        assert told["attrs"] == {"direction": "to_session", "bytes": size, "reason": reason}
        term.send("paste fits")  # the connection is the same one: the next paste crosses
        server.log.wait_event(event="clipboard.transfer", session_id=sid, attrs={"bytes": 4})
        kept(server, sid, [(size, reason)])
        term.send("close")
        assert term.wait_exit(15) == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_the_page_refuses_a_paste_too_large_and_stays_connected(e2e: E2E) -> None:
    server = limits_server(e2e)
    with chromium_page(["clipboard-read", "clipboard-write"]) as browser:
        page = browser.page
        for pad, reason in (("small", OVER_LIMIT), ("large", OVER_MESSAGE)):
            ticket = server.launch("bob", pad)
            sid = ticket["session_id"]
            joined(server, browser, ticket, server.port)
            display, home = session_x(server, sid)
            app = XApp(display, read_cookie(str(home / ".Xauthority")))
            try:
                text = "c" * 270_000  # JSON of 270 KB: over the message bound too
                page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
                page.click("#screen")
                page.keyboard.press("Control+V")
                page.wait_for_selector("#popups .popup.warning")
                assert browser.popups()[-1] == (
                    f"Your clipboard was not sent to the session: {reason}."
                )
                browser.wait("v.clipboard.refused === 1 && v.clipboard.sent === 0")
                # Refused once: the page getting the focus back does not say it again.
                page.evaluate("() => window.dispatchEvent(new Event('focus'))")
                copy_then_ctrl_v(page, app, "fits")  # same connection, paste key and all
                assert browser.view()["clipboard"]["refused"] == 1
                kept(server, sid, [(len(text), reason)])
                assert browser.view()["state"].startswith("connected")
                assert browser.errors == []
            finally:
                app.close()


def test_a_message_over_the_bound_from_another_terminal_is_still_4024(e2e: E2E) -> None:
    """The server cannot read a message over its bound, so it cannot know a clipboard in it:
    that breaks the protocol (4024, DESIGN), which only a terminal of another make reaches."""
    server = e2e.server(launchpads={"pad": {"idle_timeout": 30.0}})
    ticket = server.launch("carol", "pad")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started")
    raw.send({"type": "clipboard", "text": "x" * 300_000})
    assert raw.wait_closed() == 4024
    closed = server.log.wait_event(event="connection.closed", code=4024)
    assert "exceeds" in closed["attrs"]["error"]
