"""A real Xvfb with `xev` as the app: what keys and clicks an X client really received.

`xev` prints each event as a block; the parser keeps key presses (keysym and the text
XLookupString made of it) and button presses (button and window-relative x, y). The xev
window sits at the screen's origin, larger than any screen the tests use, so its x, y are
screen pixels.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

XEV_ARGS = "xev -event keyboard -event button -geometry 4000x4000+0+0"
needs_xev = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xev") is None,
    reason="needs Xvfb and xev",
)

_BLOCK = re.compile(r"^(KeyPress|KeyRelease|ButtonPress|ButtonRelease) event", re.M)
_KEYSYM = re.compile(r"keycode (\d+) \(keysym 0x([0-9a-f]+),")
_TEXT = re.compile(r"LookupString gives \d+ bytes: ((?:\([0-9a-f ]*\))?)")
_BUTTON = re.compile(
    r"\((-?\d+),(-?\d+)\), root:\((-?\d+),(-?\d+)\),\s+state 0x[0-9a-f]+, button (\d+)"
)


@dataclass(frozen=True)
class XEvent:
    kind: str
    keysym: int = 0
    keycode: int = 0
    text: str = ""
    button: int = 0
    x: int = 0
    y: int = 0


def parse_xev(output: str) -> list[XEvent]:
    events = []
    starts = [m.start() for m in _BLOCK.finditer(output)] + [len(output)]
    for begin, end in itertools.pairwise(starts):
        block = output[begin:end]
        kind = block.split(" ", 1)[0]
        if kind.startswith("Key"):
            key = _KEYSYM.search(block)
            text = _TEXT.search(block)
            raw = text.group(1).strip("()").split() if text else []
            decoded = bytes(int(b, 16) for b in raw).decode("utf-8", "replace")
            keysym, keycode = (int(key.group(2), 16), int(key.group(1))) if key else (0, 0)
            events.append(XEvent(kind, keysym=keysym, keycode=keycode, text=decoded))
        else:
            button = _BUTTON.search(block)
            if button is not None:
                _, _, x, y, number = (int(v) for v in button.groups())
                events.append(XEvent(kind, button=number, x=x, y=y))
    return events


def held(events: list[XEvent]) -> set[tuple[str, int]]:
    """Keys (by keycode) and buttons pressed and not released yet, as the app saw them."""
    down: set[tuple[str, int]] = set()
    for e in events:
        item = ("key", e.keycode) if e.kind.startswith("Key") else ("button", e.button)
        if e.kind.endswith("Press"):
            down.add(item)
        else:
            down.discard(item)
    return down


def typed(events: list[XEvent]) -> str:
    """The text the key presses produced, as the app would insert it (Return as a newline)."""
    return "".join(e.text.replace("\r", "\n") for e in events if e.kind == "KeyPress")


class XevFile:
    """An xev output file, read by polling with a deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[XEvent]:
        try:
            return parse_xev(self.path.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def ready(self, timeout: float = 10.0) -> None:
        """Wait until xev's window is mapped under the pointer (it then reports the keymap)."""
        self._wait(lambda: "KeymapNotify" in self._text(), timeout)

    def wait_text(self, text: str, timeout: float = 10.0) -> list[XEvent]:
        return self._wait(lambda: text in typed(self.events()), timeout, f"typed {text!r}")

    def wait_released(self, timeout: float = 5.0) -> None:
        """Wait until the app saw every key and button go back up (a release is an event
        of its own, which may come after the text its press typed)."""
        self._wait(lambda: not held(self.events()), timeout, "release of every key")

    def wait_button(self, button: int, timeout: float = 10.0, count: int = 1) -> XEvent:
        self._wait(lambda: len(self.presses(button)) >= count, timeout, f"button {button}")
        return self.presses(button)[count - 1]

    def presses(self, button: int) -> list[XEvent]:
        return [e for e in self.events() if e.kind == "ButtonPress" and e.button == button]

    def _text(self) -> str:
        try:
            return self.path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait(self, done: object, timeout: float, what: str = "xev ready") -> list[XEvent]:
        assert callable(done)
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                events = self.events()
                raise AssertionError(
                    f"xev: no {what} within {timeout}s; typed {typed(events)!r}; got {events}"
                )
            time.sleep(0.02)
        return self.events()


def set_screen_size(env: dict[str, str], width: int, height: int) -> None:
    """Resize the X screen in `env` (DISPLAY, XAUTHORITY) as an app would, with xrandr."""

    def xrandr(*args: str) -> str:
        done = subprocess.run(
            ["xrandr", *args], env=env, capture_output=True, text=True, timeout=10
        )
        return done.stdout

    name = f"t{width}x{height}"
    xrandr("--newmode", name, "0", *[str(width)] * 4, *[str(height)] * 4)
    xrandr("--addmode", "screen", name)
    xrandr("--output", "screen", "--mode", name, "--fb", f"{width}x{height}")
    assert f"current {width} x {height}," in xrandr()


class Xvfb:
    """An Xvfb of the test's own on a free display number, with an xev on it."""

    def __init__(self, root: Path, size: str = "640x480", geometry: str = "") -> None:
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as announced:
            self.name = f":{announced.readline().strip()}"
        self.xev = XevFile(root / "xev.txt")
        with self.xev.path.open("w") as out:
            args = XEV_ARGS.split()
            if geometry:  # a smaller window: not under the pointer unless placed there
                args[-1] = geometry
            self.app = subprocess.Popen(
                args,
                env={**os.environ, "DISPLAY": self.name, "LC_ALL": "C.UTF-8"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if not geometry:
            self.xev.ready()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name}

    def stop(self) -> None:
        for process in (self.app, self.process):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
