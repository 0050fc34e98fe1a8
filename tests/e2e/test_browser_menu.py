"""The browser terminal's gear menu in headless Chromium against a real server: every item,
reached with the keyboard as well as the mouse, and what each leaves in the event log."""

from __future__ import annotations

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined, shown
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)
ITEMS = ["disconnect", "fullscreen", "add-monitor", "upload", "clipboard", "stats-toggle"]
ITEMS += ["save-log", "close-session"]  # last, away from where the menu opens
SYNTHETIC = {"display": "synthetic", "video_fps": 10}


def focused(browser: Browser) -> str:
    name: str = browser.page.evaluate("() => document.activeElement.id")
    return name


def menu_open(browser: Browser) -> bool:
    return bool(browser.page.evaluate("() => !document.getElementById('menu').hidden"))


def test_the_menu_by_keyboard_stats_hooks_fullscreen_and_close(e2e: E2E, browser: Browser) -> None:
    # Clipboard and file transfer turned off: their items are not available in this session.
    off = {"clipboard": "off", "file_transfer": "off"}
    server = e2e.server(server=SYNTHETIC, launchpads={"desktop": off})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    joined(server, browser, ticket, server.port)
    page = browser.page
    assert page.evaluate("() => getComputedStyle(document.getElementById('menu')).display") == (
        "none"
    )

    # Keyboard: the gear opens the menu on the first item; arrows, Home and End move; Escape
    # closes it and gives the focus back to the gear.
    page.focus("#gear")
    page.keyboard.press("Enter")
    assert menu_open(browser) and focused(browser) == "disconnect"
    page.keyboard.press("ArrowDown")
    assert focused(browser) == "fullscreen"
    page.keyboard.press("End")
    assert focused(browser) == "close-session"
    page.keyboard.press("ArrowDown")
    assert focused(browser) == "disconnect"
    page.keyboard.press("ArrowUp")
    assert focused(browser) == "close-session"
    page.keyboard.press("Escape")
    assert not menu_open(browser) and focused(browser) == "gear"
    assert page.eval_on_selector_all("#menu [role=menuitem]", "els => els.map(e => e.id)") == ITEMS

    # Stats, chosen with the keyboard: the overlay shows the stream as drawn.
    page.keyboard.press("ArrowDown")
    for _ in range(ITEMS.index("stats-toggle")):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert not menu_open(browser)
    page.wait_for_function("() => Number(document.getElementById('stats').dataset.fps) > 2")
    overlay = page.inner_text("#stats")
    stream = browser.view()["video"]
    remote, codec = stream["remote"], stream["codec"]
    assert codec in stream["decoders"]
    assert f"{codec} {remote['width']}x{remote['height']}" in overlay
    assert "fps" in overlay and "Mbit/s" in overlay
    page.wait_for_function("() => /RTT \\d+ ms/.test(document.getElementById('stats').textContent)")
    browser.menu("stats-toggle")
    assert page.is_hidden("#stats")

    # Upload and Clipboard: a pop-up until a part of the page takes them over.
    for item in ("upload", "clipboard"):
        browser.menu(item)
        label = page.inner_text(f"#{item}")
        assert f"{label} is not available in this session." in browser.popups()[-1]
        server.log.wait_event(event="menu.unavailable", source="terminal", attrs={"item": item})
    page.evaluate(
        """() => { window.uploads = 0;
                   window.openfrpMenu.register("upload", () => { window.uploads += 1; }); }"""
    )
    browser.menu("upload")
    page.wait_for_function("() => window.uploads === 1")
    count = len(browser.popups())
    page.click("#popups .popup >> nth=0")  # a pop-up goes when clicked
    assert len(browser.popups()) == count - 1
    assert len(server.log.find(event="menu.unavailable", attrs={"item": "upload"})) == 1

    # Fullscreen, then back.
    browser.menu("fullscreen")
    page.wait_for_function("() => document.fullscreenElement !== null")
    page.wait_for_function(
        "() => document.getElementById('fullscreen').textContent === 'Exit fullscreen'"
    )
    on = server.log.wait_event(event="fullscreen", source="terminal")
    assert on["attrs"]["on"] is True and isinstance(on["attrs"]["keyboard_lock"], bool)
    browser.menu("fullscreen")
    page.wait_for_function("() => document.fullscreenElement === null")
    # The label follows the fullscreenchange event, which comes after the element is gone.
    page.wait_for_function(
        "() => document.getElementById('fullscreen').textContent === 'Fullscreen'"
    )

    # Close session from the keyboard asks once more: a first Enter only says what a second
    # does, and it forgets after a while or when the menu closes.
    page.focus("#gear")
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    label = "() => document.getElementById('close-session').textContent"
    assert page.evaluate(label) == "Click again to end the session and its apps"
    assert menu_open(browser) and focused(browser) == "close-session"
    page.keyboard.press("Escape")
    assert page.evaluate(label) == "Close session"
    page.wait_for_timeout(300)
    assert browser.view()["state"] == "connected" and browser.view().get("finalCode") is None
    # Then chosen twice: 4000, with the stream's last figures shipped first.
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    browser.wait("v.finalCode === 4000")
    assert shown(4000) in browser.popups()[-2]
    server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    final = server.log.wait_event(event="stats", source="terminal", session_id=sid)
    attrs = final["attrs"]
    assert attrs["final"] is True and attrs["codec"] == codec and attrs["fps"] > 2
    assert attrs["mbit_s"] > 0 and attrs["frames"] > 5 and attrs["rtt_ms"] >= 0
    assert (attrs["width"], attrs["height"]) == (remote["width"], remote["height"])
    assert browser.errors == []


def test_disconnect_from_the_menu_leaves_the_session_resumable(e2e: E2E, browser: Browser) -> None:
    server = e2e.server(server=SYNTHETIC)
    ticket = server.launch("bob")
    sid = ticket["session_id"]
    browser.page.add_init_script("window.openfrpStatsEveryMs = 1000")  # instead of every 10 s
    joined(server, browser, ticket, server.port)
    periodic = server.log.wait_event(event="stats", source="terminal", session_id=sid, count=2)
    assert "final" not in periodic["attrs"] and periodic["attrs"]["fps"] > 2
    assert periodic["attrs"]["mbit_s"] > 0 and periodic["attrs"]["codec"] is not None
    browser.menu("disconnect")
    browser.wait("v.state === 'disconnected'")
    assert browser.view()["finalCode"] is None
    server.log.wait_event(event="session.disconnected", session_id=sid)
    assert server.session(sid)["state"] == "disconnected"
    final = server.log.find(event="stats", source="terminal", session_id=sid)[-1]["attrs"]
    assert final["final"] is True
    assert browser.popups() == [
        "You left the session. It keeps running: open this link again to resume it.\nResume"
    ]
    browser.page.click("#resume")  # the link again, in one click
    browser.wait("v.state === 'connected (resumed)'")
    browser.wait("v.frames >= 2")
    assert browser.errors == []
