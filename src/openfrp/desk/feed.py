"""One session's input queue, drained in order by one worker thread that owns the X calls.

The event loop only offers events (never blocks, never touches X); the queue is bounded so a
flood is cut instead of growing without end. A cut or a release request also lets go of every
held key and button, so a dropped key-up never leaves a key stuck. A barrier (a clipboard
text offered to the session) holds the events after it until the text is the session's, so a
paste key pastes it, not the text before. Keys typed while the session starts are held, not
lost: until `ready_by` the worker waits for the display, then for the app's first window.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from openfrp.desk.input import Injector
from openfrp.protocol.input import InputEvent, ReleaseInput

DEFAULT_LIMIT = 512
DISPLAY_POLL = 0.05  # seconds between looks for the display while the session starts
BARRIER_WAIT = 0.5  # seconds a barrier holds the events after it at most
_RELEASE = ReleaseInput()


class InputFeed:
    """`target()` gives an object that changes with the display (a replaced display gets a
    new connection), the display's name and its cookie (None: no display, yet or at all);
    `on_failure(error)` is called once, from the worker thread, when injection fails, and the
    feed stops. Until monotonic time `ready_by` events wait for a display and keys for a
    window."""

    def __init__(
        self,
        target: Callable[[], tuple[object, str, str] | None],
        on_failure: Callable[[str], None],
        limit: int = DEFAULT_LIMIT,
        ready_by: float = 0.0,
    ) -> None:
        self._target = target
        self._on_failure = on_failure
        self.limit = limit
        self.ready_by = ready_by
        self._items: deque[InputEvent | threading.Event] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.injected = 0
        self.busy_seconds = 0.0
        self._injector: Injector | None = None  # the worker's, on display `_display`
        self._display: object = None
        self._thread = threading.Thread(target=self._run, name="input", daemon=True)
        self._thread.start()

    def offer(self, event: InputEvent) -> bool:
        """Queue `event`; False when the queue is full (the event is dropped, keys let go)."""
        with self._cond:
            if self._closed:
                return False
            if len(self._items) >= self.limit:
                if self._items[-1] is not _RELEASE:
                    self._items.append(_RELEASE)
                return False
            self._items.append(event)
            self._cond.notify()
            return True

    def barrier(self, ready: threading.Event) -> None:
        """Hold the events offered after this until `ready` is set (BARRIER_WAIT at most)."""
        with self._cond:
            if not self._closed:
                self._items.append(ready)
                self._cond.notify()

    def release(self) -> None:
        """Let go of every held key and button once the events queued so far are applied."""
        with self._cond:
            if not self._closed:
                self._items.append(_RELEASE)
                self._cond.notify()

    def close(self, timeout: float = 1.0) -> None:
        """Release what is held (if the display still answers) and stop the worker."""
        self.release()
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._items or self._closed)
                    batch = list(self._items)
                    self._items.clear()
                    closed = self._closed
                events: list[InputEvent] = []
                for item in batch:
                    if isinstance(item, threading.Event):
                        self._inject(events)
                        events = []
                        item.wait(BARRIER_WAIT)
                    else:
                        events.append(item)
                self._inject(events)
                if closed:
                    return
        except Exception as exc:
            with self._cond:
                closed, self._closed = self._closed, True
            if not closed:
                self._on_failure(f"{type(exc).__name__}: {exc}")
        finally:
            if self._injector is not None:
                with contextlib.suppress(Exception):
                    self._injector.close()

    def _inject(self, events: list[InputEvent]) -> None:
        """Apply `events` through an injector on the display as it is now (the worker's)."""
        target = self._target()
        while events and target is None and time.monotonic() < self.ready_by:
            with self._cond:
                if self._closed:
                    return
            time.sleep(DISPLAY_POLL)
            target = self._target()
        if not events or target is None:
            return
        if self._injector is None or target[0] is not self._display:
            if self._injector is not None:
                with contextlib.suppress(Exception):
                    self._injector.close()
            injector = Injector(target[1], target[2], self.ready_by)
            self._injector, self._display = injector, target[0]
        started = time.perf_counter()
        self._injector.run(events)
        self.busy_seconds += time.perf_counter() - started
        self.injected += len(events)
