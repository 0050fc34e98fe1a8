"""The Python terminal's input commands, for scripts and tests:

type TEXT           each character pressed and released, spaces at either end too (no
                    newline is added)
key COMBO           ctrl+alt+t, shift+Tab, F5, Return: pressed in order, released in reverse
                    (X's key names in any case; ctrl++ is Ctrl with the + key; shift+1 is !)
click X Y [BUTTON]  move to (X, Y) in remote screen pixels, press and release (1 left,
                    2 middle, 3 right; default 1)
move X Y            move only
scroll N            N wheel steps, down when positive, up when negative (up to MAX_SCROLL,
                    sent MAX_WHEEL_STEPS to a message)

A number the input message cannot carry is a usage error here: the server would close the
connection with 4024 for it.
"""

from __future__ import annotations

from openfrp.protocol.input import MAX_COORD, MAX_WHEEL_STEPS, InputEvent, PointerInput, WheelInput
from openfrp.protocol.keysyms import combo_keys, text_keys

WORDS = ("type", "key", "click", "move", "scroll")
USAGE = "type TEXT, key COMBO, click X Y [1|2|3], move X Y, scroll N"
MAX_SCROLL = 1000  # wheel steps one `scroll` may ask for (16 messages); more is a slip


def input_command(word: str, rest: str) -> list[InputEvent] | None:
    """The events a command line sends; None if `word` is no input command.

    Raises ValueError with the usage when the arguments do not fit."""
    if word not in WORDS:
        return None
    try:
        if word == "type":
            return list(text_keys(rest))
        if word == "key":
            return list(combo_keys(rest.strip()))
        numbers = [_whole(part) for part in rest.split()]
        if word == "scroll" and len(numbers) == 1:
            return _wheel(numbers[0])
        if word == "move" and len(numbers) == 2:
            return [PointerInput(*_on_screen(numbers[0], numbers[1]), 0)]
        if word == "click" and len(numbers) in (2, 3):
            button = numbers[2] if len(numbers) == 3 else 1
            if button not in (1, 2, 3):
                raise ValueError(f"no mouse button {button}")
            (x, y), mask = _on_screen(numbers[0], numbers[1]), 1 << (button - 1)
            return [PointerInput(x, y, 0), PointerInput(x, y, mask), PointerInput(x, y, 0)]
    except ValueError as exc:
        raise ValueError(f"{word}: {exc} (use: {USAGE})") from None
    raise ValueError(f"{word}: wrong arguments (use: {USAGE})")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected whole numbers, got {text!r}") from None


def _on_screen(x: int, y: int) -> tuple[int, int]:
    """(x, y) if the pointer message carries them; ValueError naming the one it cannot."""
    for number in (x, y):
        if not -MAX_COORD < number < MAX_COORD:
            raise ValueError(
                f"coordinate {number} out of range ({1 - MAX_COORD} to {MAX_COORD - 1})"
            )
    return x, y


def _wheel(steps: int) -> list[InputEvent]:
    """`steps` as wheel messages of at most MAX_WHEEL_STEPS each (the server allows no more)."""
    if abs(steps) > MAX_SCROLL:
        raise ValueError(f"more than {MAX_SCROLL} steps ({steps})")
    sign = 1 if steps > 0 else -1
    full, rest = divmod(abs(steps), MAX_WHEEL_STEPS)
    return [WheelInput(0, sign * size) for size in [MAX_WHEEL_STEPS] * full + [rest] if size]
