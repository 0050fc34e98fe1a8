"""The clipboard bridge against a real Xvfb (with its own cookie) and real X clients."""

from __future__ import annotations

import queue
import shutil
import time

import pytest

from openfrp.desk.clipboard import Clipboard
from openfrp.server.host import Display
from tests.support.xselection import XApp

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


class Seen:
    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, object]] = queue.Queue()

    def copied(self, text: str) -> None:
        self.items.put(("copied", text))

    def refused(self, reason: str, size: int) -> None:
        self.items.put(("refused", (reason, size)))

    def failed(self, error: str) -> None:
        self.items.put(("failed", error))

    def next(self, timeout: float = 3.0) -> tuple[str, object]:
        return self.items.get(timeout=timeout)


def bridge(display: Display, seen: Seen, limit: int = 1 << 20) -> Clipboard:
    clip = Clipboard(
        f":{display.number}", display.cookie, limit, seen.copied, seen.refused, seen.failed
    )
    assert clip.ready.wait(3.0)
    return clip


def test_text_from_the_terminal_is_what_an_x_app_pastes(display: Display) -> None:
    seen = Seen()
    clip = bridge(display, seen)
    app = XApp(f":{display.number}", display.cookie)
    try:
        text = "héllo €uro — 日本語\nline two"
        clip.offer(text)
        for _ in range(50):
            if app.paste() == text:
                break
            time.sleep(0.02)
        assert app.paste("CLIPBOARD") == text
        assert app.paste("PRIMARY") == text  # middle-click paste too
        assert seen.items.empty()  # our own ownership is not reported back as a copy
    finally:
        app.close()
        clip.close()


def test_an_offer_is_owned_when_its_event_is_set_and_a_later_one_wins(display: Display) -> None:
    """The event offer() returns is what a paste key waits for: once set, an X app pastes the
    text (or a later offer's) at once, with no polling."""
    seen = Seen()
    clip = bridge(display, seen)
    app = XApp(f":{display.number}", display.cookie)
    try:
        for round_ in range(5):
            assert clip.offer(f"round {round_}").wait(2.0)
            assert app.paste() == f"round {round_}"
        first, second = clip.offer("first"), clip.offer("second")
        assert first.wait(2.0) and second.wait(2.0)
        assert app.paste() == "second"
    finally:
        app.close()
        clip.close()
    assert clip.offer("after close").is_set()  # nothing will own it: no one waits for it


def test_text_an_x_app_copies_reaches_the_callback_and_a_large_one_is_refused(
    display: Display,
) -> None:
    seen = Seen()
    clip = bridge(display, seen, limit=1000)
    app = XApp(f":{display.number}", display.cookie)
    try:
        app.copy("copied in the session ✓")
        assert seen.next() == ("copied", "copied in the session ✓")
    finally:
        app.close()
    big = XApp(f":{display.number}", display.cookie)
    try:
        big.copy("x" * 5000)
        assert seen.next() == ("refused", ("over the size limit", 5000))
    finally:
        big.close()
        clip.close()


def test_a_wrong_cookie_is_a_failure_not_a_hang(display: Display) -> None:
    seen = Seen()
    clip = Clipboard(f":{display.number}", "00" * 16, 100, seen.copied, seen.refused, seen.failed)
    kind, error = seen.next()
    assert kind == "failed"
    assert "Invalid MIT-MAGIC-COOKIE-1 key" in str(error)
    clip.close()


def test_text_copied_before_the_bridge_started_is_handed_over(display: Display) -> None:
    app = XApp(f":{display.number}", display.cookie)
    seen = Seen()
    try:
        app.copy("copied before the terminal came")
        clip = bridge(display, seen)
        assert seen.next() == ("copied", "copied before the terminal came")
        clip.close()
    finally:
        app.close()


def test_windows_line_ends_become_lf_before_an_x_app_pastes(display: Display) -> None:
    """An X app pastes a CR as Enter: CRLF text made an xterm run each line, then an empty
    command. The session's clipboard holds X's line ends, in every form it hands out."""
    seen = Seen()
    clip = bridge(display, seen)
    app = XApp(f":{display.number}", display.cookie)
    try:
        assert clip.offer("one\r\ntwo\rthree €\r\n").wait(2.0)
        assert app.paste("CLIPBOARD") == "one\ntwo\nthree €\n"
        assert app.paste("PRIMARY") == "one\ntwo\nthree €\n"
    finally:
        app.close()
        clip.close()
