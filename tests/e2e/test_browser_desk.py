"""The browser terminal's clipboard and files in headless Chromium against a real server
with a real Xvfb: a paste in the page is what an X app pastes, a copy in an X app lands in
the page's clipboard, a file dropped on the page lands in the session's home (its hostile
name made safe), and a file offered from inside the session is saved through a link."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp.server.command import DEMO_APP
from tests.e2e.browser import ARGS, CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded
from tests.e2e.test_desk import offer
from tests.support.xselection import XApp, read_cookie

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("Xvfb") is None,
    reason="needs Debian chromium at /usr/bin/chromium and Xvfb",
)
PAD = {"idle_timeout": 30.0, "display_ready_timeout": 10.0, "app_command": "sleep 60"}
SERVER = {"display": "xvfb", "video_fps": 2}


@contextlib.contextmanager
def chromium_page(permissions: list[str]) -> Iterator[Browser]:
    """A page in a Chromium of its own, with these clipboard permissions granted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = chromium.new_context(permissions=permissions, accept_downloads=True)
            yield Browser(context.new_page())
        finally:
            chromium.close()


@pytest.fixture
def clipboard_browser() -> Iterator[Browser]:
    """A page allowed to read and write the system clipboard, as a person grants it."""
    with chromium_page(["clipboard-read", "clipboard-write"]) as browser:
        yield browser


def copy_then_ctrl_v(page: Any, app: XApp, text: str) -> None:
    """Copied elsewhere on this computer, then Ctrl+V in the page: the X app pastes it."""
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    page.click("#screen")
    page.keyboard.press("Control+V")
    for _ in bounded(5.0):
        if app.paste() == text:
            break
    assert app.paste() == text


def session_x(server: Any, sid: str) -> tuple[str, Path]:
    account = server.log.wait_event(event="session.account", session_id=sid)
    ready = server.log.wait_event(event="display.ready", session_id=sid)
    return f":{ready['attrs']['display']}", Path(account["attrs"]["home"])


def test_browser_clipboard_both_ways(e2e: E2E, clipboard_browser: Browser) -> None:
    browser, page = clipboard_browser, clipboard_browser.page
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    display, home = session_x(server, sid)
    app = XApp(display, read_cookie(str(home / ".Xauthority")))
    try:
        text = "from the browser: héllo € ✓"
        copy_then_ctrl_v(page, app, text)
        server.log.wait_event(
            event="clipboard.transfer",
            session_id=sid,
            attrs={"direction": "to_session", "bytes": len(text.encode())},
        )

        # Copied in an X app: the page's clipboard holds it (the page has the focus).
        copied = "copied in the session — 日本"
        app.copy(copied)
        browser.wait("v.clipboard.written >= 1")
        assert page.evaluate("() => navigator.clipboard.readText()") == copied
        server.log.wait_event(
            event="clipboard.transfer", session_id=sid, attrs={"direction": "from_session"}
        )
        # What the page wrote locally is not sent back when it gets the focus again.
        page.evaluate("() => window.dispatchEvent(new Event('focus'))")
        assert browser.view()["clipboard"]["sent"] == 1
        # The menu's Clipboard item: nothing new to send, it says what the session holds.
        browser.menu("clipboard")
        page.wait_for_selector("#popups .popup")
        assert browser.popups()[-1] == f"The session's clipboard holds {len(copied)} characters."
        assert browser.view()["clipboard"]["sent"] == 1
        events = [e["event"] for e in browser.view()["events"]]
        assert "clipboard.sent" in events and "clipboard.received" in events
        assert browser.errors == []
    finally:
        app.close()


def test_ctrl_v_pastes_without_the_permission_to_read_the_clipboard(e2e: E2E) -> None:
    """A browser that lets no page read the clipboard at will (Firefox, Safari, or Chromium
    where the person said no) still hands the page a paste's text: Ctrl+V pastes it."""
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("alice", "x")
    with chromium_page(["clipboard-write"]) as browser:
        joined(server, browser, ticket, server.port)
        display, home = session_x(server, ticket["session_id"])
        app = XApp(display, read_cookie(str(home / ".Xauthority")))
        try:
            with pytest.raises(Exception, match=r"denied|not allowed|NotAllowed"):
                browser.page.evaluate("() => navigator.clipboard.readText()")
            copy_then_ctrl_v(browser.page, app, "copied elsewhere — ✓")
            sent = [e for e in browser.view()["events"] if e["event"] == "clipboard.sent"]
            assert [e["attrs"]["via"] for e in sent] == ["paste"]
            assert browser.view()["input"]["held"] >= 1  # the V waited for the text
            # The menu's Clipboard item says the browser said no, and what works instead.
            browser.menu("clipboard")
            page = browser.page
            page.wait_for_function(
                "() => document.getElementById('popups').textContent"
                ".includes('did not let the page read your clipboard')"
            )
            assert browser.errors == []
        finally:
            app.close()


def test_a_copy_over_the_limit_is_told_in_the_page(e2e: E2E, clipboard_browser: Browser) -> None:
    """Text that cannot cross is said, not dropped in silence: the person would paste the
    older text and not know why."""
    browser, page = clipboard_browser, clipboard_browser.page
    server = e2e.server(server=SERVER, launchpads={"x": {**PAD, "clipboard_limit": 100}})
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    display, home = session_x(server, ticket["session_id"])
    app = XApp(display, read_cookie(str(home / ".Xauthority")))
    try:
        app.copy("y" * 500)
        page.wait_for_selector("#popups .popup.warning")
        assert browser.popups() == [
            "Text copied in the session did not reach this computer's clipboard: over the "
            "size limit of 100 bytes."
        ]
        told = [e for e in browser.view()["events"] if e["event"] == "clipboard.refused"]
        assert [(e["attrs"]["direction"], e["attrs"]["bytes"]) for e in told] == [
            ("from_session", 500)
        ]
        assert browser.view()["clipboard"]["written"] == 0
        assert browser.errors == []
    finally:
        app.close()


def _drop(page: Any, name: str, content: str) -> None:
    """Drop a file named `name` on the page, as dragging it from the desktop does."""
    page.evaluate(
        """([name, content]) => {
             const data = new DataTransfer();
             data.items.add(new File([content], name));
             document.getElementById("screen").dispatchEvent(
               new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
           }""",
        [name, content],
    )


def test_browser_upload_by_drop_and_menu_and_download_link(
    e2e: E2E, clipboard_browser: Browser, tmp_path: Path
) -> None:
    browser, page = clipboard_browser, clipboard_browser.page
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    _, home = session_x(server, sid)

    # Dropped with a name that tries to leave the folder: it lands inside, as "evil".
    _drop(page, "../../etc/evil", "dropped")
    browser.wait("v.files.uploaded.length === 1")
    assert browser.view()["files"]["uploaded"] == ["evil"]
    assert (home / "evil").read_text() == "dropped"
    assert not Path("/etc/evil").exists()

    # Chosen with the gear menu's Upload item: 150 kB in acknowledged chunks.
    chosen = tmp_path / "notes.bin"
    chosen.write_bytes(bytes(range(256)) * 600)
    with page.expect_file_chooser() as chooser:
        browser.menu("upload")
    chooser.value.set_files(str(chosen))
    browser.wait("v.files.uploaded.length === 2")
    assert (home / "notes.bin").read_bytes() == chosen.read_bytes()
    uploads = server.log.find(event="file.transfer", session_id=sid, source="server")
    assert [e["attrs"]["bytes"] for e in uploads] == [7, 153600]

    # Offered from inside the session: a link in a pop-up saves it, its size in binary units.
    report = b"the session's report" * 100  # 2000 bytes
    offered = offer(server.url, sid, "..\\..\\report.txt", report)
    assert offered["offered"]["name"] == "report.txt"
    browser.wait("v.files.downloaded.length === 1")
    said = "\u2068report.txt\u2069 (1.9 KiB) from the session: "
    assert [text for text in browser.popups() if text.startswith(said)]
    with page.expect_download() as download:
        page.click("#popups a.download")
    assert download.value.suggested_filename == "report.txt"
    saved = tmp_path / "saved.txt"
    download.value.save_as(str(saved))
    assert saved.read_bytes() == report
    server.log.wait_event(
        event="file.transfer",
        session_id=sid,
        attrs={"direction": "from_session", "name": "report.txt", "bytes": 2000},
    )
    assert browser.errors == []


def test_an_upload_a_lost_connection_cut_starts_again_and_the_next_one_goes(
    e2e: E2E, clipboard_browser: Browser, tmp_path: Path
) -> None:
    """The connection is cut while a 30 MB file goes up: once the session is back the file
    is sent again from its start and lands whole, and a file dropped after it goes too (both
    waited forever); a pop-up counts the progress meanwhile."""
    browser, page = clipboard_browser, clipboard_browser.page
    server = e2e.server(server=SERVER, launchpads={"x": PAD})
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    joined(server, browser, ticket, proxy.port)
    _, home = session_x(server, sid)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (30 * 4096))
    with page.expect_file_chooser() as chooser:
        browser.menu("upload")
    chooser.value.set_files(str(big))
    browser.wait("v.files.sending !== null && v.files.sending.sent > 2000000")
    assert any(t.startswith("Uploading \u2068big.bin\u2069: ") for t in browser.popups())
    proxy.control("cut")
    proxy.control("restore")
    browser.wait("v.state === 'connected (resumed)' && v.files.restarted === 1", timeout=15)
    browser.wait("v.files.uploaded.length === 1", timeout=30)
    assert (home / "big.bin").read_bytes() == big.read_bytes()
    _drop(page, "after.txt", "after")
    browser.wait("v.files.uploaded.length === 2")
    assert (home / "after.txt").read_text() == "after"
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == [
        "after.txt",
        "big.bin",
    ]

    # A download the cut catches is said to be lost; its progress goes.
    offer(server.url, sid, "report.bin", big.read_bytes())
    page.wait_for_function(
        "() => /Receiving \u2068report.bin\u2069: [1-9]/"
        ".test(document.getElementById('popups').textContent)"
    )
    proxy.control("cut")
    proxy.control("restore")
    browser.wait("v.state === 'connected (resumed)' && v.files.lost.length === 1", timeout=15)
    popups = browser.popups()
    assert any("report.bin\u2069 did not arrive" in text for text in popups), popups
    assert not any(text.startswith("Receiving") for text in popups), popups
    assert browser.errors == []


@pytest.mark.skipif(shutil.which("xterm") is None, reason="needs xterm")
def test_the_demo_xterm_copies_a_selection_home_and_pastes_with_ctrl_shift_v(
    e2e: E2E, clipboard_browser: Browser
) -> None:
    browser, page = clipboard_browser, clipboard_browser.page
    pad = {**PAD, "app_command": DEMO_APP, "fit_windows": True}
    server = e2e.server(server=SERVER, launchpads={"x": pad})
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    box = page.locator("#screen").bounding_box()
    assert box is not None

    def select_line(number: int) -> str:
        """Double-click the first word of the xterm's line `number` (19 pixels a line):
        what the page's clipboard then holds."""
        written = browser.view()["clipboard"]["written"]
        page.wait_for_timeout(400)  # not taken as more clicks of the last double-click
        page.mouse.dblclick(box["x"] + 30, box["y"] + 11 + 19 * (number - 1))
        browser.wait(f"v.clipboard.written > {written}")
        text: str = page.evaluate("() => navigator.clipboard.readText()")
        return text

    page.wait_for_timeout(1500)  # the shell is up
    page.keyboard.type("echo selectme\n")
    page.wait_for_timeout(1000)
    assert select_line(2) == "selectme"  # selected in the xterm: on this computer's clipboard

    # Copied on this computer while the page kept the focus, then Ctrl+Shift+V at the prompt
    # pastes it: the key waits for the text, so the xterm does not paste what it had.
    for text in ("pasted", "again"):
        page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
        page.keyboard.type("echo ")
        page.keyboard.press("Control+Shift+V")
        page.wait_for_timeout(500)  # the xterm fetches the text after the key; keys can overtake
        page.keyboard.type(" | rev\n")
    page.wait_for_timeout(1000)
    assert select_line(4) == "detsap"
    assert select_line(6) == "niaga"
    assert browser.errors == []
