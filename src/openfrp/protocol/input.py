"""The `input` message: what a person's keyboard and mouse send, checked before injection.

Format (`{"type": "input", "kind": K, "data": {...}}`):

- `key` {keysym: int, down: bool}: an X keysym (Unicode characters outside Latin-1 as
  0x1000000 + code point), pressed or released.
- `pointer` {x: int, y: int, buttons: int}: absolute position in remote screen pixels and the
  buttons held (bit 0 left, bit 1 middle, bit 2 right).
- `wheel` {dx: int, dy: int}: wheel steps; dy > 0 scrolls down, dx > 0 right.
- `release` {}: let go of every key and button held (page blur, a key combo done).

A message that breaks this format is a protocol violation (4024), the same as bad JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openfrp.protocol.messages import MessageError

MAX_KEYSYM = 0x1FFFFFFF
MAX_COORD = 1 << 15
MAX_WHEEL_STEPS = 64
BUTTON_MASK = 0b111


@dataclass(frozen=True)
class KeyInput:
    keysym: int
    down: bool


@dataclass(frozen=True)
class PointerInput:
    x: int
    y: int
    buttons: int


@dataclass(frozen=True)
class WheelInput:
    dx: int
    dy: int


@dataclass(frozen=True)
class ReleaseInput:
    pass


InputEvent = KeyInput | PointerInput | WheelInput | ReleaseInput

_FIELDS: dict[str, dict[str, type]] = {
    "key": {"keysym": int, "down": bool},
    "pointer": {"x": int, "y": int, "buttons": int},
    "wheel": {"dx": int, "dy": int},
    "release": {},
}


def parse_input(message: dict[str, Any]) -> InputEvent:
    """The typed event of a decoded `input` message; MessageError names what is wrong."""
    kind = message.get("kind")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise MessageError(f"input: unknown kind {str(kind)[:40]!r}")
    data = message.get("data", {})
    if not isinstance(data, dict) or set(data) != set(fields):
        raise MessageError(f"input {kind}: data must have exactly {sorted(fields)}")
    for name, want in fields.items():
        value = data[name]
        if type(value) is not want:  # bool is an int subclass: compare exactly
            raise MessageError(f"input {kind}: '{name}' must be {want.__name__}")
    if kind == "key":
        if not 0 < data["keysym"] <= MAX_KEYSYM:
            raise MessageError("input key: keysym out of range")
        return KeyInput(data["keysym"], data["down"])
    if kind == "pointer":
        if not (-MAX_COORD < data["x"] < MAX_COORD and -MAX_COORD < data["y"] < MAX_COORD):
            raise MessageError("input pointer: position out of range")
        if data["buttons"] & ~BUTTON_MASK:
            raise MessageError("input pointer: unknown button bits")
        return PointerInput(data["x"], data["y"], data["buttons"])
    if kind == "wheel":
        if max(abs(data["dx"]), abs(data["dy"])) > MAX_WHEEL_STEPS:
            raise MessageError(f"input wheel: more than {MAX_WHEEL_STEPS} steps")
        return WheelInput(data["dx"], data["dy"])
    return ReleaseInput()


def input_message(event: InputEvent) -> dict[str, Any]:
    """The wire form of `event` (what the terminals send)."""
    if isinstance(event, KeyInput):
        kind, data = "key", {"keysym": event.keysym, "down": event.down}
    elif isinstance(event, PointerInput):
        kind, data = "pointer", {"x": event.x, "y": event.y, "buttons": event.buttons}
    elif isinstance(event, WheelInput):
        kind, data = "wheel", {"dx": event.dx, "dy": event.dy}
    else:
        kind, data = "release", {}
    return {"type": "input", "kind": kind, "data": data}
