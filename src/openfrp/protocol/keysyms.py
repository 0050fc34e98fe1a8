"""Characters and key names as X keysyms, for terminals that type text and key combos.

Latin-1 characters are their own keysym; every other character is 0x1000000 + its code point,
which X servers understand without a keymap entry (the server binds a spare keycode). A key
name is a short one of ours (ctrl, enter, page_up) or X's own (plus, Pause, KP_Enter), in any
case, so what an X user or xev calls a key can be written.
"""

from __future__ import annotations

import difflib
import re

from Xlib import XK

from openfrp.protocol.input import KeyInput

NAMED: dict[str, int] = {
    "ctrl": 0xFFE3,
    "control": 0xFFE3,
    "ctrl_r": 0xFFE4,
    "shift": 0xFFE1,
    "shift_r": 0xFFE2,
    "alt": 0xFFE9,
    "alt_r": 0xFFEA,
    "altgr": 0xFE03,
    "super": 0xFFEB,
    "meta": 0xFFE7,
    "return": 0xFF0D,
    "enter": 0xFF0D,
    "tab": 0xFF09,
    "escape": 0xFF1B,
    "esc": 0xFF1B,
    "backspace": 0xFF08,
    "delete": 0xFFFF,
    "insert": 0xFF63,
    "home": 0xFF50,
    "end": 0xFF57,
    "page_up": 0xFF55,
    "pageup": 0xFF55,
    "page_down": 0xFF56,
    "pagedown": 0xFF56,
    "left": 0xFF51,
    "up": 0xFF52,
    "right": 0xFF53,
    "down": 0xFF54,
    "space": 0x20,
    "menu": 0xFF67,
    "print": 0xFF61,
    "caps_lock": 0xFFE5,
    **{f"f{n}": 0xFFBE + n - 1 for n in range(1, 25)},
}


def _x_names() -> dict[str, int]:
    """X's keysym names (the groups XK loads: keys, Latin-1), lowercased. A name two keysyms
    share in two cases (Eacute, eacute) is left out: it is taken in X's own case only."""
    found: dict[str, set[int]] = {}
    for name, keysym in vars(XK).items():
        if name.startswith("XK_"):
            found.setdefault(name[3:].lower(), set()).add(keysym)
    return {name: syms.pop() for name, syms in found.items() if len(syms) == 1}


KEY_NAMES: dict[str, int] = {**_x_names(), **NAMED}
# What Shift gives on a US keyboard, the session's default, as the page sends it (`!`, not `1`).
_US_SHIFTED = dict(zip("`1234567890-=[]\\;',./", '~!@#$%^&*()_+{}|:"<>?', strict=True))
# One key name and what follows it: `+` or the end. A `+` where a name belongs is the + key.
_PART = re.compile(r"\s*(\+|[^+\s][^+]*?)\s*(\+|\Z)")
_SHIFTS = {0xFFE1, 0xFFE2}  # Shift_L, Shift_R
_CONTROL_CHARS = {"\n": 0xFF0D, "\r": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08, "\x1b": 0xFF1B}


def char_keysym(char: str) -> int:
    if char in _CONTROL_CHARS:
        return _CONTROL_CHARS[char]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x1000000 + code


def text_keys(text: str) -> list[KeyInput]:
    """A press and a release per character: what typing `text` sends."""
    keys = []
    for char in text:
        keysym = char_keysym(char)
        keys += [KeyInput(keysym, True), KeyInput(keysym, False)]
    return keys


def combo_keys(combo: str) -> list[KeyInput]:
    """`ctrl+alt+t`, `shift+Tab`, `ctrl++`, `ctrl+plus`, `F5`, `€`: presses in order, releases
    in reverse. With Shift a character is what Shift makes of it on a US keyboard, as the page
    sends the key: `ctrl+shift+v` is V and `shift+1` is `!` (the server lets go of a Shift
    that would change the character it was sent, so V or `!` keeps the app's Shift).

    Raises ValueError, one line naming a part that is neither a key name nor one character."""
    keysyms = [_keysym(name) for name in _names(combo)]
    if _SHIFTS.intersection(keysyms):
        keysyms = [_shifted(k) for k in keysyms]
    return [KeyInput(k, True) for k in keysyms] + [KeyInput(k, False) for k in reversed(keysyms)]


def _names(combo: str) -> list[str]:
    names: list[str] = []
    at = 0
    while (part := _PART.match(combo, at)) is not None:
        names.append(part.group(1))
        at = part.end()
        if not part.group(2):
            return names
    if not names:
        raise ValueError("no key given")
    plus = "(the + key itself: ctrl++ or ctrl+plus)"
    if combo[at:].strip():
        raise ValueError(f"no key name at {combo[at:].strip()!r} {plus}")
    raise ValueError(f"no key after {combo.strip()!r} {plus}")


def _keysym(name: str) -> int:
    if len(name) == 1:
        return char_keysym(name)
    if name.lower() in KEY_NAMES:
        return KEY_NAMES[name.lower()]
    if keysym := XK.string_to_keysym(name):  # X's spelling, case and all: Eacute, eacute
        return keysym
    close = difflib.get_close_matches(name.lower(), KEY_NAMES, n=3, cutoff=0.75)
    hint = f"; did you mean {' or '.join(close)}?" if close else " (a key name or one character)"
    raise ValueError(f"unknown key {name!r}{hint}")


def _shifted(keysym: int) -> int:
    """`keysym` as Shift gives it: a capital letter, the US shifted row (`1` is `!`)."""
    char = chr(keysym) if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF else ""
    if char in _US_SHIFTED:
        return ord(_US_SHIFTED[char])
    return char_keysym(char.upper()) if len(char.upper()) == 1 else keysym
