"""The X server's word that something was drawn (the DAMAGE extension), for the stream worker.

Without it a still screen is looked at 30 times a second, and a change waits for the next look
(16 ms on average). With it, the worker rests while the screen is still and looks as soon as
anything is drawn. The watch asks for one event per change (DamageReportNonEmpty) and clears
the damage at once, so a screen that keeps changing costs one event per batch of drawing,
not one per rectangle. A display without the extension, or one that goes away, simply
leaves the worker on its ticks (`on_live(False)`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from Xlib.ext import damage

from openfrp.desk.xconnect import open_display


class DamageWatch:
    """Calls `on_damage()` from its thread after each change drawn on display `name`; and
    `on_live(True)` once it watches, `on_live(False)` when it stops watching."""

    def __init__(
        self,
        name: str,
        cookie: str,
        on_damage: Callable[[], None],
        on_live: Callable[[bool], None],
    ) -> None:
        self._name, self._cookie = name, cookie
        self._on_damage, self._on_live = on_damage, on_live
        self._display: Any = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="openfrp-damage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, without waiting: shutting the connection's socket down ends the
        thread's wait for an event (closing it would not wake a thread blocked on it), and
        the thread says `on_live(False)` as it ends."""
        self._stopped = True
        display = self._display
        if display is not None:
            with contextlib.suppress(OSError):
                display.display.socket.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        try:
            display = open_display(self._name, self._cookie)
        except Exception:
            return  # no display to watch: the worker keeps its ticks
        self._display = display
        try:
            if display.has_extension("DAMAGE") and not self._stopped:
                self._watch(display)
        except Exception:
            pass  # the display went away, or stop() closed the connection
        finally:
            self._on_live(False)
            with contextlib.suppress(Exception):
                display.close()

    def _watch(self, display: Any) -> None:
        display.damage_query_version()
        watched = display.screen().root.damage_create(damage.DamageReportNonEmpty)
        display.sync()
        self._on_live(True)
        notify = display.extension_event.DamageNotify  # python-xlib copies the event class
        while not self._stopped:
            event = display.next_event()
            if event.type == notify:
                display.damage_subtract(watched, 0, 0)
                display.flush()
                self._on_damage()
