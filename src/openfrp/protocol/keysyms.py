"""Characters and key names as X keysyms, for terminals that type text and key combos.

Latin-1 characters are their own keysym; every other character is 0x1000000 + its code point,
which X servers understand without a keymap entry (the server binds a spare keycode).
"""

from __future__ import annotations

import difflib

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
    """`ctrl+alt+t`, `shift+Tab`, `F5`, `€`: presses in order, releases in reverse. With
    Shift, a letter is its capital, as the key gives it: `ctrl+shift+v` sends V (the server
    would otherwise let go of Shift to make a v, and the app would see Ctrl+V).

    Raises ValueError naming a part that is neither a key name nor one character."""
    parts = [part.strip() for part in (combo.split("+") if combo != "+" else ["+"])]
    shifted = any(name.lower() in ("shift", "shift_r") for name in parts)
    keysyms = []
    for name in parts:
        if name.lower() in NAMED:
            keysyms.append(NAMED[name.lower()])
        elif len(name) == 1:
            capital = name.upper() if shifted and len(name.upper()) == 1 else name
            keysyms.append(char_keysym(capital))
        else:
            close = difflib.get_close_matches(name.lower(), NAMED, n=3, cutoff=0.6)
            hint = (
                f"; did you mean {' or '.join(close)}?"
                if close
                else " (a key name or one character)"
            )
            raise ValueError(f"unknown key {name!r}{hint}")
    return [KeyInput(k, True) for k in keysyms] + [KeyInput(k, False) for k in reversed(keysyms)]
