"""The browser terminal's keyboard where it used to get lost, in headless Chromium against a
real server: keys typed as the page opens (type-ahead), keys typed after a gear-menu choice
(the keyboard goes back to the session), a stats overlay that lets clicks through; a reload
after the link's token expired, which joins with the ticket's token the tab kept; pop-ups
that tell of something done go by themselves."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, Browser, link
from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded
from tests.e2e.test_input import xev, xev_server
from tests.support.xev import XevFile, needs_xev

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)
__all__ = ["xev"]  # the fixture
ITEMS = ["disconnect", "fullscreen", "add-monitor", "upload", "clipboard", "stats-toggle"]


@needs_xev
def test_keys_typed_as_the_page_opens_and_after_a_menu_choice_reach_the_app(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    page = browser.page
    held: list[Any] = []

    def hold(route: Any) -> None:  # the page waits here until the keys are typed
        held.append(route)

    page.route("**/api/codes", hold)
    page.goto(link(ticket, server.port), wait_until="commit")
    page.wait_for_function("() => window.openfrp !== undefined")
    page.keyboard.type("ahead")
    for _ in bounded(10.0):
        if held:
            break
        page.wait_for_timeout(20)
    assert browser.view()["state"] == "starting"  # typed before the page had its ticket
    held[0].continue_()
    page.unroute("**/api/codes", hold)
    browser.wait("v.state.startsWith('connected')")
    xev.wait_text("ahead")

    # A choice with the mouse, then typing: the keys reach the app, not the gear.
    browser.menu("stats-toggle")
    page.keyboard.type("m")
    xev.wait_text("aheadm")
    # The stats overlay over the desktop's corner lets clicks through to the session.
    middle = page.evaluate(
        "() => { const b = document.getElementById('stats').getBoundingClientRect();"
        " return document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2).id; }"
    )
    assert page.is_visible("#stats") and middle == "screen"

    # The same with the keyboard: the gear opens the menu, Enter chooses, the keys go on.
    page.focus("#gear")
    page.keyboard.press("Enter")
    for _ in range(ITEMS.index("stats-toggle")):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.is_hidden("#stats")
    page.keyboard.type("k")
    xev.wait_text("aheadmk")
    assert browser.errors == []


def test_a_reload_after_the_link_expired_resumes_and_notes_go_by_themselves(
    e2e: E2E, browser: Browser
) -> None:
    server = e2e.server(
        server={"display": "synthetic", "video_fps": 10},
        account={"link_ttl": 3.0},
        launchpads={"desktop": {"file_transfer": "off"}},
    )
    ticket = server.launch("alice")
    url = ticket["connect_url"]
    assert "#token=" in url and ticket["token"] not in url  # the link's own, short-lived token
    page = browser.page
    page.add_init_script("window.openfrpNoteMs = 300")
    page.goto(url)
    browser.wait("v.state.startsWith('connected')")

    # A note (here: an item this session does not offer) goes by itself.
    browser.menu("upload")
    assert "Upload is not available in this session." in browser.popups()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('#popups .popup')]"
        ".some((box) => box.dataset.text.includes('not available'))"
    )

    time.sleep(3.5)  # the link's token has expired; the session goes on
    page.reload()
    browser.wait("v.state === 'connected (resumed)'", timeout=15)
    assert browser.errors == []

    # A new tab has no ticket of its own: the expired link is refused there, with what to do.
    other = Browser(page.context.browser.new_page())
    other.page.goto(url)
    other.wait("v.state === 'cannot join'")
    assert any("expired" in text for text in other.popups()), other.popups()
    # A link cut before its token says so, and what to do.
    other.page.goto(url.split("#")[0])
    other.wait("v.state === 'cannot join'")
    assert any("This link has no token" in text and "new one" in text for text in other.popups()), (
        other.popups()
    )
    other.page.context.close()
