"""The browser terminal's keyboard and mouse in headless Chromium reach `xev` on a real Xvfb:
typed text exactly (a non-ASCII character, an AltGr result, a dead-key composition,
Cyrillic and a shortcut on its layout, text inserted without keys and an input method's
composition, Windows' AltGr reported as Ctrl+Alt), held keys repeated, clicks at the pixel
the person pointed at, and nothing held once the page loses focus; the session's cursor
shape drawn by the page."""

from __future__ import annotations

import time

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.test_input import xev, xev_server
from tests.support.xev import XevFile, needs_xev, typed

pytestmark = [
    needs_xev,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
__all__ = ["xev"]  # the fixture


def test_typing_and_clicking_in_the_page_reach_the_app(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    browser.wait("v.frames >= 1")
    xev.ready()
    page = browser.page
    # The session's cursor shape (XFIXES) is the canvas' own cursor, drawn by the browser.
    browser.wait("v.input.cursor !== undefined")
    style = page.evaluate("() => getComputedStyle(document.getElementById('screen')).cursor")
    assert style.startswith('url("data:image/png;base64,'), style[:80]
    box = page.locator("#screen").bounding_box()
    assert box is not None
    cx, cy = box["x"] + 201.5, box["y"] + 77.5
    want = page.evaluate(f"() => window.openfrpVideo.toRemote({cx}, {cy})")
    page.mouse.click(cx, cy)
    click = xev.wait_button(1)
    assert (click.x, click.y) == (want["x"], want["y"])
    page.mouse.click(cx + 40, cy + 30, button="right")
    right = xev.wait_button(3)
    assert (right.x - click.x, right.y - click.y) == pytest.approx((40, 30), abs=1)

    # The window shrinks: the session's screen follows, and a click still lands where pointed.
    page.set_viewport_size({"width": 900, "height": 600})
    browser.wait("v.video.remote !== null && v.video.remote.width === 900", timeout=15)
    browser.wait("v.frames >= 1 && v.video.picture !== null")
    page.wait_for_timeout(300)  # a frame of the new size is drawn
    box = page.locator("#screen").bounding_box()
    assert box is not None
    cx, cy = box["x"] + 850.5, box["y"] + 550.5
    want = page.evaluate(f"() => window.openfrpVideo.toRemote({cx}, {cy})")
    assert want is not None and want["x"] >= 840, want  # near the new screen's far corner
    page.mouse.click(cx, cy)
    after = xev.wait_button(1, count=2)
    assert (after.x, after.y) == (want["x"], want["y"])

    page.keyboard.type("Hello, world!")
    # Keys of other layouts, as Chromium reports them (CDP: what the OS keyboard would send).
    cdp = page.context.new_cdp_session(page)

    def key(
        name: str, code: str, text: str = "", down: bool = True, up: bool = True, ctrl: bool = False
    ) -> None:
        modifiers = 2 if ctrl else 0
        if down:
            kind = "keyDown" if text else "rawKeyDown"
            cdp.send(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": name, "code": code, "text": text, "modifiers": modifiers},
            )
        if up:
            cdp.send(
                "Input.dispatchKeyEvent",
                {"type": "keyUp", "key": name, "code": code, "modifiers": modifiers},
            )

    key("é", "Digit2", "é")  # French AZERTY: the 2 key gives é
    key("AltGraph", "AltRight", up=False)  # German: AltGr+E gives €
    key("€", "KeyE", "€")
    key("AltGraph", "AltRight", down=False)
    key("Dead", "Equal")  # a dead acute accent, then e: the composed é
    key("é", "KeyE", "é")
    for char, code in zip("Мир", ("KeyV", "KeyB", "KeyH"), strict=True):  # Russian layout
        key(char, code, char)
    key("Control", "ControlLeft", up=False, ctrl=True)  # Ctrl and its C key: the shortcut Ctrl+C
    key("\u0441", "KeyC", ctrl=True)  # the Cyrillic letter es
    key("Control", "ControlLeft", down=False)
    # Caps Lock on, here and so in the session: the letters come as the page's side cased
    # them (the session's lock does not invert them again), and Ctrl with a capital C, which
    # only Caps Lock makes without Shift, is Ctrl+C, not Ctrl+Shift+C.
    key("CapsLock", "CapsLock")
    key("A", "KeyA", "A")
    key("B", "KeyB", "B")
    key("Control", "ControlLeft", up=False, ctrl=True)
    key("C", "KeyC", ctrl=True)
    key("Control", "ControlLeft", down=False)
    key("CapsLock", "CapsLock")
    key("x", "KeyX", "x")
    # Text with no key of its own: an on-screen keyboard or the emoji picker inserts it, an
    # input method composes it (only what it commits is typed, not the composition).
    page.keyboard.insert_text("ñ中")
    cdp.send("Input.imeSetComposition", {"text": "にほ", "selectionStart": 2, "selectionEnd": 2})
    cdp.send("Input.insertText", {"text": "日本"})
    page.keyboard.press("Enter")
    expected = "Hello, world!é€éМир\x03AB\x03xñ中日本\n"
    xev.wait_text(expected)
    assert typed(xev.events()) == expected
    presses = [e for e in xev.events() if e.kind == "KeyPress" and e.keysym != 0xFFE5]
    ctrl_c = [i for i, e in enumerate(presses) if e.text == "\x03"][-1]
    assert (presses[ctrl_c - 1].keysym, presses[ctrl_c].keysym) == (0xFFE3, ord("c"))
    assert browser.view()["input"]["keys"] >= 2 * (len(expected) - 4)
    assert browser.view()["input"]["texts"] == 4

    # A key held while the page loses focus is let go in the session too.
    page.keyboard.down("Shift")
    page.keyboard.down("Q")
    xev.wait_text(expected + "Q")
    page.evaluate("() => window.dispatchEvent(new Event('blur'))")
    browser.wait("v.input.released >= 1")
    xev.wait_released()
    assert browser.errors == []


def test_command_on_a_mac_is_control_in_the_session(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    """Cmd+C on a Mac is the session's Ctrl+C (and Cmd+V its Ctrl+V): the person's own
    shortcut key, not Super."""
    server = xev_server(e2e, xev.path)
    page = browser.page
    page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'platform', { get: () => 'MacIntel' })"
    )
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    browser.wait("v.frames >= 1")
    xev.ready()
    page.click("#screen")
    page.keyboard.down("Meta")
    page.keyboard.press("c")
    page.keyboard.up("Meta")
    xev.wait_text("\x03")
    presses = [e.keysym for e in xev.events() if e.kind == "KeyPress"]
    assert presses[-2:] == [0xFFE3, ord("c")]  # Control_L, then c: Ctrl+C
    assert 0xFFEB not in presses  # no Super


def test_windows_altgr_types_its_character_and_a_held_key_repeats(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    """Windows reports AltGr as Ctrl+Alt: a ControlLeft press, then AltRight ("AltGraph"),
    then the character with Ctrl and Alt set. The session got Control around it: AltGr+Q on
    German gave NUL, not @. Its Control is Windows' own, not the person's, and is not sent;
    a real Ctrl+Alt+T and Ctrl+C keep theirs. A held key's repeated key-downs reach the app as
    repeats (it acted once), on a spare keycode too."""
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    browser.wait("v.frames >= 1")
    xev.ready()
    cdp = browser.page.context.new_cdp_session(browser.page)

    def send(kind: str, name: str, code: str, modifiers: int = 0, **more: object) -> None:
        event = {"type": kind, "key": name, "code": code, "modifiers": modifiers, **more}
        cdp.send("Input.dispatchKeyEvent", event)

    alt, ctrl = 1, 2
    for char, code in (("@", "KeyQ"), ("{", "Digit7"), ("€", "KeyE")):  # German, on Windows
        at = time.time()  # Windows gives its Control and AltGr presses one time
        send("rawKeyDown", "Control", "ControlLeft", ctrl, location=1, timestamp=at)
        send("rawKeyDown", "AltGraph", "AltRight", ctrl | alt, location=2, timestamp=at)
        send("keyDown", char, code, ctrl | alt, text=char)
        send("keyUp", char, code, ctrl | alt)
        send("keyUp", "AltGraph", "AltRight", ctrl, location=2)
        send("keyUp", "Control", "ControlLeft", 0, location=1)
    send("rawKeyDown", "Control", "ControlLeft", ctrl, location=1)  # Ctrl+Alt+T: a shortcut
    send("rawKeyDown", "Alt", "AltLeft", ctrl | alt, location=1)
    send("rawKeyDown", "t", "KeyT", ctrl | alt)
    send("keyUp", "t", "KeyT", ctrl | alt)
    send("keyUp", "Alt", "AltLeft", ctrl, location=1)
    send("rawKeyDown", "c", "KeyC", ctrl)  # and Ctrl+C, the Control still held
    send("keyUp", "c", "KeyC", ctrl)
    send("keyUp", "Control", "ControlLeft", 0, location=1)
    expected = "@{€\x14\x03"
    xev.wait_text(expected)
    keys = (("k", "KeyK", "k"), ("ö", "Semicolon", "ö"), ("Backspace", "Backspace", ""))
    for name, code, text in keys:
        send("keyDown" if text else "rawKeyDown", name, code, text=text)
        for _ in range(3):  # as Chromium sends a held key
            send("keyDown" if text else "rawKeyDown", name, code, text=text, autoRepeat=True)
        send("keyUp", name, code)
        expected += (text or "\b") * 4
    xev.wait_text(expected)
    assert typed(xev.events()) == expected
    xev.wait_released()
    assert browser.errors == []
