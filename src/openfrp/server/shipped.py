"""The events a terminal ships into the server's log: checked, marked and budgeted.

A terminal is not trusted to speak for the server: it may write only events marked as its own
(source `terminal`) of its own session, never one of the server's (`session.ended`, say) nor
one naming another user, account, launchpad or host; and a session gets a budget of events
and bytes per minute so one terminal cannot fill the log. Problems are reported at most once
a minute, with counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from openfrp.events import Context, Event

WINDOW = 60.0  # seconds
MAX_EVENT_BYTES = 16 * 1024
# Names only the server writes (the analyzer takes them as the server's word), so a terminal
# may never write them; `session.warning` and `connection.closed` are also the terminal's own.
SERVER_PREFIXES = ("server.", "tokens.", "events.", "isolation.")
SERVER_EVENTS = frozenset(
    {
        "session.created",
        "session.account",
        "session.starting",
        "session.started",
        "session.ended",
        "session.resumed",
        "session.disconnected",
        "connection.opened",
        "connection.rejected",
    }
)


@dataclass
class ShippedEvents:
    identity: Context
    events_per_minute: int
    bytes_per_minute: int
    _start: float | None = None
    _events: int = 0
    _bytes: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _told: bool = False

    def admit(self, items: list[Any], cid: str, now: float) -> tuple[list[Event], list[Event]]:
        """The events to write for one shipped batch, and the server's own notes about it
        (at most one per window, plus a summary of the window before when it had problems)."""
        notes = self._roll(now)
        accepted: list[Event] = []
        for item in items:
            problem = self._check(item)
            if problem is not None:
                self._counts[problem] = self._counts.get(problem, 0) + 1
                continue
            size = len(json.dumps(item, separators=(",", ":"), default=str))
            if self._events >= self.events_per_minute or self._bytes + size > self.bytes_per_minute:
                self._counts["over budget"] = self._counts.get("over budget", 0) + 1
                continue
            self._events += 1
            self._bytes += size
            accepted.append(Event.from_dict(item))
        if self._counts and not self._told:
            self._told = True
            notes.append(self._note(cid, "some shipped events were refused or dropped"))
        return accepted, notes

    def _check(self, item: Any) -> str | None:
        """Why an item may not enter the log as this session's terminal event, or None."""
        try:
            if len(json.dumps(item, separators=(",", ":"), default=str)) > MAX_EVENT_BYTES:
                return "too large"
            event = Event.from_dict(item)
        except (ValueError, TypeError, RecursionError):
            return "malformed"
        me = self.identity
        if event.source != "terminal" or event.session_id != me.session_id:
            return "not this session's terminal event"
        if event.event in SERVER_EVENTS or event.event.startswith(SERVER_PREFIXES):
            return "a server event"
        mine = (me.host, me.user, me.account, me.launchpad)
        theirs = (event.host, event.user, event.account, event.launchpad)
        if any(t is not None and t != m for t, m in zip(theirs, mine, strict=True)):
            return "names another host, user, account or launchpad"
        return None

    def _roll(self, now: float) -> list[Event]:
        """Start a new window when the last one is over; summarise it if it had problems."""
        if self._start is not None and now - self._start < WINDOW:
            return []
        notes = []
        if self._counts:
            notes.append(self._note(None, "shipped events refused or dropped in the last window"))
        self._start, self._events, self._bytes, self._counts, self._told = now, 0, 0, {}, False
        return notes

    def _note(self, cid: str | None, message: str) -> Event:
        return self.identity.event(
            "events.rejected",
            severity="warning",
            message=message,
            connection_id=cid,
            attrs={
                "counts": dict(self._counts),
                "window_s": WINDOW,
                "events_per_minute": self.events_per_minute,
                "bytes_per_minute": self.bytes_per_minute,
            },
        )
