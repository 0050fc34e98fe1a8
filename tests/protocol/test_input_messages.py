"""The input message: a well-formed one reaches the host side, a broken one is 4024."""

from __future__ import annotations

from typing import Any

import pytest

from openfrp.protocol.actions import Deliver
from openfrp.protocol.input import (
    KeyInput,
    PointerInput,
    ReleaseInput,
    WheelInput,
    input_message,
    parse_input,
)
from openfrp.protocol.keysyms import combo_keys, text_keys
from openfrp.protocol.messages import MessageError
from openfrp.protocol.server_session import SessionState
from tests.protocol.harness import ServerHarness, closes, logs


def joined() -> ServerHarness:
    h = ServerHarness()
    h.run_until(1000)
    h.join("c1")
    assert h.session.state is SessionState.ACTIVE
    return h


@pytest.mark.parametrize(
    "event",
    [KeyInput(0x1000416, True), PointerInput(5, 7, 0b101), WheelInput(-2, 3), ReleaseInput()],
)
def test_every_kind_round_trips_and_is_delivered(event: Any) -> None:
    message = input_message(event)
    assert parse_input(message) == event
    h = joined()
    assert h.send("c1", message) == [Deliver("c1", message)]


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("key", {"key": "a"}, "data must have exactly"),
        ("key", {"keysym": 97, "down": 1}, "'down' must be bool"),
        ("key", {"keysym": True, "down": True}, "'keysym' must be int"),
        ("key", {"keysym": 0, "down": True}, "keysym out of range"),
        ("pointer", {"x": 1, "y": 2}, "data must have exactly"),
        ("pointer", {"x": 1.5, "y": 2, "buttons": 0}, "'x' must be int"),
        ("pointer", {"x": 1, "y": 2, "buttons": 8}, "unknown button bits"),
        ("pointer", {"x": 1 << 20, "y": 2, "buttons": 0}, "position out of range"),
        ("wheel", {"dx": 0, "dy": 1000}, "more than 64 steps"),
        ("release", {"all": True}, "data must have exactly"),
        ("touch", {}, "unknown kind 'touch'"),
    ],
)
def test_a_broken_input_message_is_4024(kind: str, data: dict[str, Any], problem: str) -> None:
    message = {"type": "input", "kind": kind, "data": data}
    with pytest.raises(MessageError, match=problem):
        parse_input(message)
    h = joined()
    out = h.send("c1", message)
    assert [c.code for c in closes(out)] == [4024]
    assert problem in logs(out, "connection.closed")[0].attrs["error"]


def test_text_and_combos_as_keysyms() -> None:
    assert text_keys("a€\n") == [
        KeyInput(0x61, True),
        KeyInput(0x61, False),
        KeyInput(0x10020AC, True),
        KeyInput(0x10020AC, False),
        KeyInput(0xFF0D, True),
        KeyInput(0xFF0D, False),
    ]
    assert combo_keys("ctrl+alt+T") == [
        KeyInput(0xFFE3, True),
        KeyInput(0xFFE9, True),
        KeyInput(0x54, True),
        KeyInput(0x54, False),
        KeyInput(0xFFE9, False),
        KeyInput(0xFFE3, False),
    ]
    assert combo_keys("F5")[0] == KeyInput(0xFFC2, True)
    # With Shift a letter is its capital, as the key gives it (ß has none of one letter).
    assert [k.keysym for k in combo_keys("ctrl+shift+v")[:3]] == [0xFFE3, 0xFFE1, 0x56]
    assert [k.keysym for k in combo_keys("shift+ß")[:2]] == [0xFFE1, 0xDF]
    assert combo_keys("ctrl+v")[1] == KeyInput(0x76, True)
    with pytest.raises(ValueError, match="unknown key 'hyperdrive' \\(a key name or one"):
        combo_keys("ctrl+hyperdrive")
    with pytest.raises(ValueError, match="unknown key 'retrun'; did you mean return"):
        combo_keys("retrun")
