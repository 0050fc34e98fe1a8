"""The browser terminal's mouse and wheel in headless Chromium, as `xev` on a real Xvfb got
them: a drag let go over the page's bar, past the window's edge or as the window loses focus
ends there in the app; one wheel notch is one X wheel click; a key held as the focus moves to
the bar is let go in the app."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.conftest import E2E
from tests.e2e.test_input import xev, xev_page
from tests.support.xev import XEvent, XevFile, needs_xev, typed

pytestmark = [
    needs_xev,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
__all__ = ["xev"]  # the fixture


def wait_for(xev: XevFile, done: Callable[[list[XEvent]], bool], what: str) -> list[XEvent]:
    deadline = time.monotonic() + 10
    while not done(events := xev.events()):
        if time.monotonic() > deadline:
            raise AssertionError(f"xev: no {what} within 10 s; got {events}")
        time.sleep(0.02)
    return events


def released(xev: XevFile, count: int) -> XEvent:
    """The app's `count`th release of button 1, once it came."""

    def ups(events: list[XEvent]) -> list[XEvent]:
        return [e for e in events if e.kind == "ButtonRelease" and e.button == 1]

    return ups(wait_for(xev, lambda events: len(ups(events)) >= count, f"release {count}"))[-1]


def test_a_drag_let_go_off_the_picture_ends_there_in_the_app(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    """The page keeps the pointer while a button is down: a release over the bar (floating
    over the picture) is the app's at that point, a fast drag past the window's edge ends at
    the screen's last column or row, and a window losing focus mid-drag lets the button go."""
    page = xev_page(e2e, browser, xev)
    size = browser.view()["video"]["remote"]
    bar = page.locator("#bar").bounding_box()
    assert bar is not None
    over = (bar["x"] + 10, bar["y"] + bar["height"] / 2)
    want = page.evaluate(f"() => window.openfrpVideo.toRemote({over[0]}, {over[1]})")
    page.mouse.move(700, 200)
    page.mouse.down()
    page.mouse.move(*over, steps=8)
    page.mouse.up()
    up = released(xev, 1)
    assert (up.x, up.y) == (want["x"], want["y"])

    start = page.evaluate("() => window.openfrpVideo.toRemote(700, 400)")
    page.mouse.move(700, 400)
    page.mouse.down()
    page.mouse.move(1350, 400)  # one move, well past the right edge of the 1280 px window
    page.mouse.up()
    up = released(xev, 2)
    assert (up.x, up.y) == (size["width"] - 1, start["y"])
    page.mouse.move(300, 300)
    page.mouse.down()
    page.mouse.move(-40, 900, steps=2)  # past the bottom left corner
    page.mouse.up()
    up = released(xev, 3)
    assert (up.x, up.y) == (0, size["height"] - 1)

    page.mouse.move(500, 300)
    page.mouse.down()
    xev.wait_button(1, count=4)
    page.evaluate("() => window.dispatchEvent(new Event('blur'))")  # let go where unseen
    released(xev, 4)
    page.mouse.up()
    assert browser.errors == []


WHEEL = """async ([events, pause]) => {
    const screen = document.getElementById("screen");
    for (const [dy, mode] of events) {
        if (dy === null) { await new Promise((done) => setTimeout(done, pause)); continue; }
        screen.dispatchEvent(new WheelEvent("wheel", { deltaY: dy, deltaMode: mode,
            clientX: 400, clientY: 300, bubbles: true, cancelable: true }));
    }
}"""


def test_one_wheel_notch_is_one_click_in_the_app(e2e: E2E, browser: Browser, xev: XevFile) -> None:
    """Chromium's own wheel events of one notch (100 px as on Windows, 120 px, 53 px as on
    Linux; both axes) and Firefox's line-mode notches are one X button click each; touchpad
    deltas add up to a click; a leftover neither takes a notch's click after the direction
    turns nor adds one after a pause. Key presses mark where each part ends."""
    page = xev_page(e2e, browser, xev)
    page.mouse.move(400, 300)
    for dx, dy in ((0, 100), (0, 120), (0, 120), (0, 53), (100, 0), (-120, 0), (0, -120)):
        page.mouse.wheel(dx, dy)
    page.keyboard.press("a")
    xev.wait_text("a")
    lines = [(3, 1), (3, 1), (-3, 1)]
    touchpad = [(8, 0)] * 10 + [(-6, 0)] * 10
    turn = [(40, 0), (-3, 1)]  # 40 px down left over, then a notch up
    pause = [(30, 0), (None, 0), (30, 0)]
    page.evaluate(WHEEL, [lines + touchpad + turn + pause, 300])
    page.keyboard.press("b")
    events = xev.wait_text("ab")
    got = [e.button or e.text for e in events if e.kind in ("ButtonPress", "KeyPress")]
    assert got == [5, 5, 5, 5, 7, 6, 4, "a", 5, 5, 4, 5, 4, 4, "b"]


def test_a_key_let_go_in_the_menu_is_let_go_in_the_app(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    """Ctrl held while the gear is clicked (the menu takes the focus) and let go there: the
    app sees Ctrl go up, so what is typed after the menu closes is not Ctrl+letters."""
    page = xev_page(e2e, browser, xev)
    page.mouse.click(400, 300)
    page.keyboard.down("Control")
    wait_for(xev, lambda events: any(e.keysym == 0xFFE3 for e in events), "Control_L")
    page.click("#gear")
    browser.wait("document.activeElement.id === 'disconnect'")
    page.keyboard.up("Control")
    xev.wait_released()
    page.keyboard.press("Escape")  # closes the menu: the keyboard is the session's again
    browser.wait("document.activeElement.id === 'keys'")
    page.keyboard.type("ls")
    assert typed(xev.wait_text("ls")) == "ls"
