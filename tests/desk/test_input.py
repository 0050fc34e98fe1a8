"""Keys and clicks injected into a real Xvfb arrive at a real X client (xev) exactly."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import display as xdisplay

from openfrp.desk.feed import BARRIER_WAIT, InputFeed
from openfrp.desk.input import Injector
from openfrp.protocol.input import (
    InputEvent,
    KeyInput,
    PointerInput,
    ReleaseInput,
    WheelInput,
)
from openfrp.protocol.keysyms import text_keys
from tests.support.xev import Xvfb, needs_xev, set_screen_size, typed

pytestmark = needs_xev


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[Xvfb]:
    server = Xvfb(tmp_path)
    yield server
    server.stop()


def keys_down(name: str) -> list[int]:
    """Keycodes the X server holds down right now (QueryKeymap)."""
    d = xdisplay.Display(name)
    try:
        bits = d.query_keymap()
    finally:
        d.close()
    return [i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1]


def test_text_with_accents_symbols_and_cyrillic_arrives_exactly(xvfb: Xvfb) -> None:
    text = "Hello, wörld! é€ß ü Привет мир 123 @#$\n"
    injector = Injector(xvfb.name)
    injector.run([PointerInput(10, 10, 0), *text_keys(text)])
    xvfb.xev.wait_text(text)
    assert typed(xvfb.xev.events()) == text
    assert keys_down(xvfb.name) == []  # every key went back up, Shift included
    injector.close()


def test_keys_before_any_pointer_move_reach_the_window_not_the_bare_root(tmp_path: Path) -> None:
    """No window manager: the keyboard follows the pointer, which starts at the screen's
    centre, over the root; the app's window is elsewhere. The first keys still reach it."""
    xvfb = Xvfb(tmp_path, geometry="120x90+500+370")
    try:
        d = xdisplay.Display(xvfb.name)
        deadline = time.monotonic() + 10
        while not d.screen().root.query_tree().children and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.screen().root.query_pointer().child == 0  # over the bare root
        d.close()
        injector = Injector(xvfb.name)
        injector.run(text_keys("hi\n"))
        xvfb.xev.wait_text("hi\n")
        injector.close()
    finally:
        xvfb.stop()


def test_spare_keycodes_are_recycled_least_recently_used_first(xvfb: Xvfb) -> None:
    # More distinct missing characters than the keymap has spare keycodes (19 in Xvfb's).
    text = "".join(chr(c) for c in range(0x3B1, 0x3C9)) + "ÆØÅ€"
    injector = Injector(xvfb.name)
    injector.run(text_keys(text))
    injector.run(text_keys(text[:5]))
    xvfb.xev.wait_text(text + text[:5])


def test_altgr_held_by_the_person_does_not_change_the_character(xvfb: Xvfb) -> None:
    # A German keyboard: AltGr+E is "€", AltGr+Q is "@"; the page sends AltGr, then the result.
    altgr = 0xFE03  # ISO_Level3_Shift
    events: list[InputEvent] = [KeyInput(altgr, True)]
    for char in "€@":
        keysym = ord(char) if ord(char) < 0x100 else 0x1000000 + ord(char)
        events += [KeyInput(keysym, True), KeyInput(keysym, False)]
    injector = Injector(xvfb.name)
    injector.run([*events, KeyInput(altgr, False)])
    xvfb.xev.wait_text("€@")


def test_shift_tab_and_ctrl_keep_their_modifiers(xvfb: Xvfb) -> None:
    shift, tab, ctrl = 0xFFE1, 0xFF09, 0xFFE3
    injector = Injector(xvfb.name)
    injector.run(
        [
            KeyInput(shift, True),
            KeyInput(tab, True),
            KeyInput(tab, False),
            KeyInput(shift, False),
            KeyInput(ctrl, True),
            KeyInput(ord("c"), True),
            KeyInput(ord("c"), False),
            KeyInput(ctrl, False),
        ]
    )
    xvfb.xev.wait_text("\x03")  # Ctrl+C as the app sees it
    raw = xvfb.xev.path.read_text()
    assert "state 0x1, keycode 23 (keysym 0xfe20, ISO_Left_Tab)" in raw  # Shift+Tab


def test_a_held_key_repeats_as_x_auto_repeat_does(xvfb: Xvfb) -> None:
    """A terminal repeats a held key as more presses. The X server drops a press of a key
    already down (a held Backspace deleted once): each repeat is a release and a press of the
    same keycode, with the same modifiers, for keys on spare keycodes too; a modifier, which
    X never repeats, is pressed once."""
    xvfb.xev.ready()
    injector = Injector(xvfb.name)
    injector.run(text_keys("ö"))  # bound to a spare keycode first (see the Caps Lock test)
    xvfb.xev.wait_text("ö")
    ctrl, backspace = 0xFFE3, 0xFF08
    events: list[InputEvent] = []
    for keysym in (ord("k"), 0xF6, ord("@"), backspace):  # @ needs Shift on the US map
        events += [KeyInput(keysym, True)] * 4 + [KeyInput(keysym, False)]
    events += [KeyInput(ctrl, True), KeyInput(ctrl, True), KeyInput(ord("c"), True)]
    events += [KeyInput(ctrl, True), KeyInput(ord("c"), True), KeyInput(ord("c"), False)]
    injector.run([*events, KeyInput(ctrl, False)])
    expected = "ö" + "kkkk" + "öööö" + "@@@@" + "\b" * 4 + "\x03\x03"
    xvfb.xev.wait_text(expected)
    assert typed(xvfb.xev.events()) == expected
    assert sum(e.kind == "KeyPress" and e.keysym == ctrl for e in xvfb.xev.events()) == 1
    assert keys_down(xvfb.name) == []
    injector.close()


def test_after_the_layout_changes_every_character_still_types(xvfb: Xvfb) -> None:
    """setxkbmap in the session rewrites the keymap, spare keycodes included: characters
    bound before it (€, ö) typed nothing after it, and the first key after it used the old
    map (y came as z on German). The keymap is read again before the next batch."""
    xvfb.xev.ready()
    injector = Injector(xvfb.name)
    injector.run(text_keys("€ö"))
    xvfb.xev.wait_text("€ö")
    expected = "€ö"
    for layout, text in (("de", "y€öz@"), ("fr", "a1€öq")):
        subprocess.run(["setxkbmap", layout], env=xvfb.env, check=True, timeout=10)
        injector.run(text_keys(text))
        expected += text
        xvfb.xev.wait_text(expected)
    assert typed(xvfb.xev.events()) == expected
    assert keys_down(xvfb.name) == []
    injector.close()


def test_release_all_lets_go_of_held_keys_and_buttons(xvfb: Xvfb) -> None:
    injector = Injector(xvfb.name)
    injector.run([PointerInput(30, 40, 0b101), KeyInput(0xFFE3, True), KeyInput(ord("x"), True)])
    assert len(keys_down(xvfb.name)) == 2
    assert injector.held == 4
    time.sleep(0.8)  # longer than the X server's repeat delay: the terminal repeats, not X
    assert [e.text for e in xvfb.xev.events() if e.kind == "KeyPress"][-1:] == ["\x18"]
    assert sum(e.kind == "KeyPress" for e in xvfb.xev.events()) == 2  # Ctrl and x, once
    injector.run([ReleaseInput()])
    assert keys_down(xvfb.name) == []
    assert injector.held == 0
    releases = [e for e in xvfb.xev.events() if e.kind == "ButtonRelease"]
    assert sorted(e.button for e in releases) == [1, 3]


def test_clicks_land_on_the_pixel_and_are_clamped_after_a_resize(tmp_path: Path) -> None:
    xvfb = Xvfb(tmp_path, "1024x768")
    try:
        injector = Injector(xvfb.name)
        injector.run([PointerInput(123, 45, 1), PointerInput(123, 45, 0)])
        first = xvfb.xev.wait_button(1)
        assert (first.x, first.y) == (123, 45)
        set_screen_size(xvfb.env, 640, 480)
        injector.run([PointerInput(1000, 700, 4), PointerInput(1000, 700, 0)])
        right = xvfb.xev.wait_button(3)
        assert (right.x, right.y) == (639, 479)  # clamped to the smaller screen
        set_screen_size(xvfb.env, 1024, 768)
        injector.run([PointerInput(1000, 700, 2), PointerInput(1000, 700, 0)])
        middle = xvfb.xev.wait_button(2)
        assert (middle.x, middle.y) == (1000, 700)
        injector.run([PointerInput(-7, 9999, 1), PointerInput(0, 0, 0)])
        clamped = xvfb.xev.wait_button(1, count=2)
        assert (clamped.x, clamped.y) == (0, 767)
    finally:
        xvfb.stop()


def test_wheel_steps_are_buttons_4_to_7(xvfb: Xvfb) -> None:
    injector = Injector(xvfb.name)
    injector.run([PointerInput(50, 50, 0), WheelInput(0, 3), WheelInput(0, -2), WheelInput(1, 0)])
    injector.run([WheelInput(-1, 0)])
    xvfb.xev.wait_button(6)
    presses = [e.button for e in xvfb.xev.events() if e.kind == "ButtonPress"]
    assert presses == [5, 5, 5, 4, 4, 7, 6]


def test_the_feed_keeps_order_cuts_a_flood_and_reports_a_dead_display(xvfb: Xvfb) -> None:
    failures: list[str] = []
    feed = InputFeed(lambda: (xvfb, xvfb.name, ""), failures.append, limit=64)
    accepted = [feed.offer(e) for e in text_keys("abc" * 200)]
    assert not all(accepted)  # 1200 events into a queue of 64 cannot all fit
    for _ in range(100):
        if feed.offer(KeyInput(ord("z"), True)) and feed.offer(KeyInput(ord("z"), False)):
            break
        time.sleep(0.02)
    xvfb.xev.wait_text("z")
    assert keys_down(xvfb.name) == []  # a cut key-up did not leave a key stuck
    xvfb.process.kill()
    xvfb.process.wait(5)
    for _ in range(100):
        feed.offer(KeyInput(ord("q"), True))
        if failures:
            break
        time.sleep(0.02)
    assert failures and "Error" in failures[0], failures
    assert not feed.offer(KeyInput(ord("q"), False))  # a failed feed takes nothing more
    feed.close()


def test_with_the_displays_caps_lock_on_characters_keep_their_case(xvfb: Xvfb) -> None:
    """The terminal sends letters as the person's side cased them, and the person's Caps
    Lock too: the display's lock must not invert them again (it did: 'AB' came as 'ab'),
    on keys of its keymap or bound on demand."""
    xvfb.xev.ready()
    injector = Injector(xvfb.name)
    # The keys bound on demand are bound first: an app reads a new binding a moment later,
    # which under load can miss the very next press (a race of its own, not the lock's).
    injector.run(text_keys("aZéÉжЖ"))
    xvfb.xev.wait_text("aZéÉжЖ")
    injector.run([KeyInput(0xFFE5, True), KeyInput(0xFFE5, False)])  # Caps Lock on
    injector.run(text_keys("aAzZ1!éÉжЖ"))
    injector.run([KeyInput(0xFFE5, True), KeyInput(0xFFE5, False)])  # and off again
    injector.run(text_keys("qQ"))
    xvfb.xev.wait_text("aZéÉжЖaAzZ1!éÉжЖqQ")
    assert typed(xvfb.xev.events()) == "aZéÉжЖaAzZ1!éÉжЖqQ"


def test_a_barrier_holds_the_keys_after_it_until_set_or_for_its_bound(xvfb: Xvfb) -> None:
    """A clipboard offer is a barrier: the paste key after it waits until the text is the
    session's, and a text that never is holds the keys BARRIER_WAIT at most."""
    xvfb.xev.ready()
    feed = InputFeed(lambda: (xvfb, xvfb.name, ""), lambda error: None)
    owned = threading.Event()
    try:
        for event in [*text_keys("a"), owned, *text_keys("b")]:
            feed.barrier(event) if isinstance(event, threading.Event) else feed.offer(event)
        xvfb.xev.wait_text("a")
        time.sleep(0.2)
        assert typed(xvfb.xev.events()) == "a"  # b waits behind the barrier
        owned.set()
        xvfb.xev.wait_text("ab")
        began = time.monotonic()
        feed.barrier(threading.Event())  # never set
        for event in text_keys("c"):
            feed.offer(event)
        xvfb.xev.wait_text("abc")
        assert BARRIER_WAIT - 0.05 <= time.monotonic() - began < BARRIER_WAIT + 2.0
    finally:
        feed.close()


def test_injection_cost_per_event(xvfb: Xvfb) -> None:
    injector = Injector(xvfb.name)
    keys = text_keys("the quick brown fox " * 25)
    began = time.perf_counter()
    injector.run(keys)
    per_key = (time.perf_counter() - began) / len(keys)
    moves: list[InputEvent] = [PointerInput(i % 600, i % 400, 0) for i in range(500)]
    began = time.perf_counter()
    injector.run(moves)
    per_move = (time.perf_counter() - began) / len(moves)
    print(f"\ninjection: {per_key * 1e6:.0f} us per key event, {per_move * 1e6:.0f} us per move")
    assert per_key < 0.002 and per_move < 0.002


_PRESS = re.compile(
    r"^KeyPress event.*?state (0x\w+), keycode \d+ \(keysym 0x\w+, (\w+)\)", re.M | re.S
)


def chords(xev: Path) -> list[str]:
    """Each key press the app got but a modifier's, as `Shift+Ctrl+name` from its X state."""
    found = []
    for press in _PRESS.finditer(xev.read_text(errors="replace")):
        state, name = int(press.group(1), 16), press.group(2)
        if not name.endswith(("_L", "_R")):
            held = [mod for bit, mod in ((1, "Shift"), (4, "Ctrl"), (8, "Alt")) if state & bit]
            found.append("+".join([*held, name]))
    return found


def test_a_held_shift_stays_on_a_key_whose_character_it_does_not_change(xvfb: Xvfb) -> None:
    """Shift+Space and Ctrl+Shift+Space reached the app as Space without Shift: a keysym at
    the plain level had Shift let go around it. Space's shifted level is its plain one, so
    the Shift is the person's chord and stays. A character Shift does change still comes as
    sent: a French Shift+& (1) and a German Shift+7 (/) let Shift go."""
    shift, ctrl, space = 0xFFE1, 0xFFE3, 0x20
    events: list[InputEvent] = [KeyInput(shift, True)]
    for keysym in (space, ord("!"), ord("1"), ord("/")):
        events += [KeyInput(keysym, True), KeyInput(keysym, False)]
    events += [KeyInput(ctrl, True), KeyInput(space, True), KeyInput(space, False)]
    events += [KeyInput(ord("+"), True), KeyInput(ord("+"), False)]
    injector = Injector(xvfb.name)
    injector.run([*events, KeyInput(ctrl, False), KeyInput(shift, False)])
    xvfb.xev.wait_text(" !1/")
    xvfb.xev.wait_released()
    expected = ["Shift+space", "Shift+exclam", "1", "slash", "Shift+Ctrl+space", "Shift+Ctrl+plus"]
    assert chords(xvfb.xev.path) == expected
    assert keys_down(xvfb.name) == []
    injector.close()
