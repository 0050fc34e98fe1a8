"""The X server's word that something was drawn (the DAMAGE extension), for the stream worker.

Without it a still screen is looked at 30 times a second, and a change waits for the next look
(16 ms on average). With it, the worker rests while the screen is still and looks as soon as
anything is drawn. The watch asks for one event per change (DamageReportNonEmpty) and clears
the damage at once, so a screen that keeps changing costs one event per batch of drawing,
not one per rectangle. A display without the extension, or one that goes away, simply
leaves the worker on its ticks (`on_live(False)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from Xlib.ext import damage

from openfrp.desk.xconnect import XWatch


class DamageWatch(XWatch):
    """Calls `on_damage()` from its thread after each change drawn on display `name`; and
    `on_live(True)` once it watches, `on_live(False)` when it stops watching."""

    def __init__(
        self,
        name: str,
        cookie: str,
        on_damage: Callable[[], None],
        on_live: Callable[[bool], None],
    ) -> None:
        self._on_damage, self._on_live = on_damage, on_live
        super().__init__(name, cookie, "openfrp-damage")

    def _ended(self) -> None:
        self._on_live(False)  # without a watch the worker keeps its ticks

    def _watch(self, display: Any) -> None:
        if not display.has_extension("DAMAGE"):
            return
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
