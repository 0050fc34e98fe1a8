"""Chords reach the app with the modifiers the person holds, on a real server, Xvfb and xev
(each press's keysym and X state): Shift+Space and Ctrl+Shift+Space from the page, which
came without Shift; `key shift+1`, `key ctrl+shift+=` from `openfrp connect`, which came as
a plain 1 and Ctrl+=; Ctrl with the + key (`ctrl++`, `ctrl+plus`) and X's key names, which
were refused; a wrong name is one line naming it, and sends nothing."""

from __future__ import annotations

import time

import pytest

from tests.desk.test_input import chords
from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.conftest import E2E
from tests.e2e.test_input import xev, xev_page, xev_server
from tests.support.xev import XevFile, needs_xev

pytestmark = needs_xev
__all__ = ["xev"]  # the fixture


def wait_chords(xev: XevFile, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(got := chords(xev.path)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_the_terminals_key_command_sends_chords_as_held(e2e: E2E, xev: XevFile) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    terminal = e2e.connected(server, ticket)
    xev.ready()
    terminal.send("move 20 20")
    sent = {
        "shift+1": "Shift+exclam",
        "shift+space": "Shift+space",
        "ctrl+shift+=": "Shift+Ctrl+plus",
        "ctrl+shift+minus": "Shift+Ctrl+underscore",
        "ctrl++": "Shift+Ctrl+plus",  # + is Shift's on the US map: the server adds it
        "ctrl+plus": "Shift+Ctrl+plus",
        "ctrl+Equal": "Ctrl+equal",
        "PAUSE": "Pause",
        "kp_enter": "KP_Enter",
    }
    for combo in sent:
        terminal.send(f"key {combo}")
    assert wait_chords(xev, len(sent)) == list(sent.values())
    xev.wait_released()
    assert terminal.count(r"^key: ") == 0
    terminal.send("key ctrl+nosuchkey")
    terminal.wait_line(r"^key: unknown key 'nosuchkey' \(a key name or one character\)")
    terminal.send("key ctrl+")
    terminal.wait_line(r"^key: no key after 'ctrl\+' \(the \+ key itself: ctrl\+\+ ")
    terminal.send("key x")  # after the wrong ones, which sent nothing
    assert wait_chords(xev, len(sent) + 1)[len(sent) :] == ["x"]
    terminal.send("close")
    assert terminal.wait_exit(15) == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_the_pages_chords_keep_shift(e2e: E2E, browser: Browser, xev: XevFile) -> None:
    page = xev_page(e2e, browser, xev)
    page.click("#screen")
    pressed = {
        "Shift+Space": "Shift+space",
        "Control+Shift+Space": "Shift+Ctrl+space",
        "Shift+Digit1": "Shift+exclam",
        "Control+Shift+Equal": "Shift+Ctrl+plus",
        "Control+Space": "Ctrl+space",
    }
    for chord in pressed:
        page.keyboard.press(chord)
    assert wait_chords(xev, len(pressed)) == list(pressed.values())
    xev.wait_released()
    assert browser.errors == []
