"""The browser terminal's input.js under Node, with a stub page: the input messages that wheel
deltas (at given times), drags off the picture and key-ups in the bar make. The real page and
app are in tests/e2e/test_browser_pointer.py; here the timing and the letterbox are exact."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from typing import Any

import pytest

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (Debian nodejs)")

# A canvas of 120x90 page pixels with the 100x50 picture centred on it at 1:1, from (10, 20).
DRIVER = r"""
"use strict";
const store = () => { const on = {}; return { on, addEventListener: (k, f) => { on[k] = f; } }; };
class Element {
  constructor(inBar) { this.inBar = inBar; this.id = inBar ? "gear" : "keys"; }
  closest() { return this.inBar ? this : null; }
}
const doc = store(), win = store(), canvas = store();
const captured = [];
Object.assign(globalThis, { Element, navigator: { platform: "Linux" }, window: win });
globalThis.document = Object.assign(doc, { pointerLockElement: null, hidden: false,
  createElement: () => ({ style: {}, setAttribute() {}, focus() {}, addEventListener() {} }) });
Object.assign(canvas, { width: 120, height: 90, style: {}, after() {},
  setPointerCapture: (id) => captured.push(id),
  getBoundingClientRect: () => ({ left: 0, top: 0, width: 120, height: 90 }) });
const sent = [];
const inside = (x, y) => x >= 10 && x < 110 && y >= 20 && y < 70;
const link = { send: (m) => sent.push([m.kind, m.data]), ready: () => true,
  toRemote: (x, y) => (inside(x, y) ? { x: Math.floor(x - 10), y: Math.floor(y - 20) } : null) };
require("vm").runInThisContext(require("fs").readFileSync(process.argv[1], "utf8"));
const input = new window.OpenfrpInput(canvas, link);
const base = { preventDefault() {}, pointerId: 1, button: -1, buttons: 0, timeStamp: 0 };
for (const [kind, event] of JSON.parse(require("fs").readFileSync(0, "utf8"))) {
  const e = { ...base, ...event, type: kind, target: new Element(event.bar === true) };
  if (kind in doc.on) doc.on[kind](e);
  else if (kind in win.on) win.on[kind](e);
  else canvas.on[kind]?.(e);  // unheard: nothing
}
process.stdout.write(JSON.stringify({ sent, captured }));
process.exit(0);
"""


def run(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    script = resources.files("openfrp.terminal").joinpath("static", "input.js")
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", DRIVER, str(script)],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wheel(dy: float, at: float, dx: float = 0, mode: int = 0) -> tuple[str, dict[str, Any]]:
    event = {"deltaX": dx, "deltaY": dy, "deltaMode": mode, "timeStamp": at}
    return "wheel", {**event, "clientX": 50, "clientY": 40}


def steps(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, int]]:
    return [(d["dx"], d["dy"]) for kind, d in run(events)["sent"] if kind == "wheel"]


def test_a_wheel_notch_is_one_step_whatever_its_size() -> None:
    """Chrome's pixel notches (100 on Windows, 120, ~53 on Linux) and Firefox's 3 lines each
    scroll one step, each way and on both axes, at once or after a pause; a delta of several
    notches (a busy page's coalesced events) scrolls as many."""
    notches = [wheel(100, 0), wheel(120, 10), wheel(53, 1000), wheel(-100, 1010)]
    notches += [wheel(3, 1020, mode=1), wheel(-3, 2000, mode=1), wheel(0, 2010, dx=120)]
    notches += [wheel(0, 2020, dx=-53), wheel(360, 3000)]
    want = [(0, 1), (0, 1), (0, 1), (0, -1), (0, 1), (0, -1), (1, 0), (-1, 0), (0, 3)]
    assert steps(notches) == want


def test_touchpad_deltas_add_up_and_a_leftover_never_eats_or_adds_a_notch() -> None:
    """80 px in 8 px events is one step; 60 px back up in 6 px events is one step up (the 30
    px left over downward is dropped when the direction turns); 40 px down then a notch up is
    the notch's step up; a leftover is dropped after a pause, so 30 px, a pause and 30 px more
    make no step, where 30 and 30 px at once make one."""
    down = [wheel(8, 10 * i) for i in range(10)]
    up = [wheel(-6, 100 + 10 * i) for i in range(10)]
    assert steps(down + up) == [(0, 1), (0, -1)]
    assert steps([wheel(40, 0), wheel(-3, 50, mode=1)]) == [(0, -1)]
    assert steps([wheel(30, 0), wheel(30, 300)]) == []
    assert steps([wheel(30, 0), wheel(30, 100)]) == [(0, 1)]


def pointer(kind: str, x: float, y: float, buttons: int, button: int = -1) -> tuple[str, Any]:
    return kind, {"clientX": x, "clientY": y, "buttons": buttons, "button": button}


def test_a_drag_keeps_the_pointer_and_goes_to_the_pictures_edge() -> None:
    """A press captures the pointer; moves and the release off the picture (past the window,
    on the letterbox beside the picture) go at the picture's nearest pixel; a move off it with
    no button held is not sent."""
    out = run(
        [
            pointer("pointermove", 5, 5, 0),  # the letterbox, nothing held: nothing sent
            pointer("pointerdown", 50, 40, 1, 0),
            pointer("pointermove", 500, -30, 1),  # past the window's top right
            pointer("pointermove", 5, 45, 1),  # the letterbox, left of the picture
            pointer("pointerup", 300, 200, 0, 0),  # past the bottom right
        ]
    )
    assert out["captured"] == [1]
    assert out["sent"] == [
        ["pointer", {"x": 40, "y": 20, "buttons": 1}],
        ["pointer", {"x": 99, "y": 0, "buttons": 1}],
        ["pointer", {"x": 0, "y": 25, "buttons": 1}],
        ["pointer", {"x": 99, "y": 49, "buttons": 0}],
    ]


@pytest.mark.parametrize("end", ["lostpointercapture", "pointercancel"])
def test_a_drag_the_browser_ends_lets_go_where_it_was(end: str) -> None:
    out = run(
        [
            pointer("pointerdown", 50, 40, 1, 0),
            pointer("pointermove", 60, 45, 1),
            (end, {}),
            (end, {}),  # nothing held any more: nothing sent
        ]
    )
    assert out["sent"][-2:] == [
        ["pointer", {"x": 50, "y": 25, "buttons": 1}],
        ["pointer", {"x": 50, "y": 25, "buttons": 0}],
    ]


def test_a_key_let_go_in_the_bar_is_let_go_in_the_session() -> None:
    """Ctrl pressed in the session and let go with the focus in the bar (the gear clicked): its
    key-up is sent. Keys pressed in the bar, and their key-ups, are the page's."""
    ctrl = {"key": "Control", "code": "ControlLeft", "ctrlKey": True}
    enter = {"key": "Enter", "code": "Enter"}
    out = run(
        [
            ("keydown", ctrl),
            ("keydown", {**enter, "bar": True}),
            ("keyup", {**enter, "bar": True}),
            ("keyup", {**ctrl, "bar": True}),
        ]
    )
    assert out["sent"] == [
        ["key", {"keysym": 0xFFE3, "down": True}],
        ["key", {"keysym": 0xFFE3, "down": False}],
    ]
