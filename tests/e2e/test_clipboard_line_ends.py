"""Clipboard line ends, end to end: a real server with a real Xvfb, headless Chromium, the
Python terminal, a terminal of another make and real X clients copying and pasting.

Text from Windows (CRLF) reached the X clipboard as it was, so an xterm pasted every line and
then an empty command (an X app pastes a CR as Enter). And a text copied in the session, which
the Windows clipboard holds with CRLF, came back into the session on the next focus, though a
text is never sent back the way it came. Now text entering the session has X's line ends (LF),
the session's own copy is known whatever its line ends, and each size logged is what crossed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, bounded, hello_for
from tests.e2e.test_browser_desk import PAD, SERVER, chromium_page, session_x
from tests.support.xselection import XApp, read_cookie

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)
# Chromium on Windows stores a written text with CRLF (w3c/clipboard-apis#168): as it does.
WINDOWS = """() => { const c = navigator.clipboard; const write = c.writeText.bind(c);
  c.writeText = (t) => write(t.replace(/\\r?\\n/g, "\\r\\n")); }"""


def x_app(server: ServerProcess, sid: str) -> XApp:
    display, home = session_x(server, sid)
    return XApp(display, read_cookie(str(home / ".Xauthority")))


@contextmanager
def page_in_session(e2e: E2E) -> Iterator[tuple[ServerProcess, str, Browser]]:
    """A server with an X session and a Chromium page joined to it, allowed the clipboard."""
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("alice", "x")
    with chromium_page(["clipboard-read", "clipboard-write"]) as browser:
        joined(server, browser, ticket, server.port)
        yield server, ticket["session_id"], browser


def pasted(app: XApp, text: str) -> None:
    """An X app pastes `text` from CLIPBOARD and PRIMARY (once the session has it)."""
    for _ in bounded(5.0):
        if app.paste() == text:
            break
    assert app.paste("CLIPBOARD") == text
    assert app.paste("PRIMARY") == text


def into_session(server: ServerProcess, sid: str) -> list[int]:
    """The sizes the server logged of the texts that went into the session."""
    found = server.log.find(event="clipboard.transfer", session_id=sid, source="server")
    return [e["attrs"]["bytes"] for e in found if e["attrs"]["direction"] == "to_session"]


def sent_by(browser: Browser) -> list[tuple[str, int]]:
    events = browser.view()["events"]
    return [
        (e["attrs"]["via"], e["attrs"]["bytes"]) for e in events if e["event"] == "clipboard.sent"
    ]


@needs_chromium
def test_a_windows_paste_reaches_x_apps_with_lf_at_the_size_that_crossed(e2e: E2E) -> None:
    with page_in_session(e2e) as (server, sid, browser):
        page = browser.page
        app = x_app(server, sid)
        try:
            page.evaluate("(t) => navigator.clipboard.writeText(t)", "one\r\ntwo\r\nthree €\r\n")
            page.click("#screen")
            page.keyboard.press("Control+V")
            first = "one\ntwo\nthree €\n"
            pasted(app, first)
            # A lone CR (old Mac text) too, read from the local clipboard on the focus.
            page.evaluate("(t) => navigator.clipboard.writeText(t)", "four\rfive")
            page.evaluate("() => window.dispatchEvent(new Event('focus'))")
            pasted(app, "four\nfive")
            sizes = [len(first.encode()), len(b"four\nfive")]  # 18 and 9 bytes: no CR crossed
            server.log.wait_event(event="clipboard.transfer", session_id=sid, count=2)
            assert into_session(server, sid) == sizes
            assert sent_by(browser) == [("paste", sizes[0]), ("focus", sizes[1])]
            assert browser.errors == []
        finally:
            app.close()


@needs_chromium
def test_the_sessions_copy_is_not_sent_back_from_a_windows_clipboard(e2e: E2E) -> None:
    with page_in_session(e2e) as (server, sid, browser):
        page = browser.page
        page.evaluate(WINDOWS)
        page.click("#screen")
        copier, app = x_app(server, sid), x_app(server, sid)
        try:
            copied = "first line\nsecond line — ✓\n"
            copier.copy(copied)
            browser.wait("v.clipboard.written >= 1")
            assert page.evaluate("() => navigator.clipboard.readText()") == copied.replace(
                "\n", "\r\n"
            )
            # The person switches away and back: the page reads its clipboard, the same text.
            page.evaluate("() => window.dispatchEvent(new Event('focus'))")
            page.wait_for_timeout(700)
            # The menu's Clipboard item reads it again: nothing new to send, it says so.
            browser.menu("clipboard")
            page.wait_for_selector("#popups .popup")
            assert (
                browser.popups()[-1] == f"The session's clipboard holds {len(copied)} characters."
            )
            assert browser.view()["clipboard"]["sent"] == 0
            assert app.paste() == copied  # still the copy of the app that made it
            assert into_session(server, sid) == []
            server.log.wait_event(
                event="clipboard.transfer",
                session_id=sid,
                attrs={"direction": "from_session", "bytes": len(copied.encode())},
            )
            assert browser.errors == []
        finally:
            copier.close()
            app.close()


def test_a_terminal_of_another_make_gets_the_same_from_the_server(e2e: E2E) -> None:
    """The server makes X's line ends itself and knows the session's copy given back with
    CRLF: a terminal that sends text as it is gets the same as the page."""
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("carol", "x")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started")
    copier, app = x_app(server, sid), x_app(server, sid)
    try:
        copier.copy("x\ny")
        message: dict[str, Any] = raw.wait_message("clipboard")
        assert message["text"] == "x\ny"
        raw.send({"type": "clipboard", "text": "x\r\ny"})  # as a Windows clipboard gives it
        for _ in bounded(1.0):
            assert app.paste() == "x\ny"  # the app's copy stays the session's
        raw.send({"type": "clipboard", "text": "a\r\nb\rc"})
        pasted(app, "a\nb\nc")
        server.log.wait_event(event="clipboard.transfer", session_id=sid, attrs={"bytes": 5})
        assert into_session(server, sid) == [5]  # "a\nb\nc" alone: no echo before it
    finally:
        copier.close()
        app.close()


def test_the_python_terminal_pastes_a_cr_as_lf(e2e: E2E) -> None:
    """`paste TEXT` takes a line of its input, whose end is cut: a CR inside it is a line
    end of another system, which X apps would paste as Enter."""
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("dave", "x")
    sid = ticket["session_id"]
    term = e2e.terminal(ticket["connect_url"], name="cli")
    term.wait_line(rf"^connected to {sid} as c-")
    app = x_app(server, sid)
    try:
        term.send("paste one\rtwo €")
        pasted(app, "one\ntwo €")
        size = len("one\ntwo €".encode())
        server.log.wait_event(event="clipboard.transfer", session_id=sid, attrs={"bytes": size})
        assert term.log.wait_event(event="clipboard.sent")["attrs"] == {"bytes": size}
        assert into_session(server, sid) == [size]
        term.send("close")
        assert term.wait_exit(15) == 0
    finally:
        app.close()
