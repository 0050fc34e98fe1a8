"""What the state machines ask their I/O layer to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openfrp.protocol.monitors import Monitor


@dataclass(frozen=True)
class Send:
    """Send a control message (a JSON object) on a connection."""

    connection_id: str
    message: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close a connection with a close code; `abort` means do not wait for the peer."""

    connection_id: str
    code: int
    reason: str
    abort: bool = False


@dataclass(frozen=True)
class Log:
    """Write an event; the I/O layer stamps the time and the session's identity fields."""

    event: str
    code: int | None = None
    severity: str | None = None
    message: str | None = None
    connection_id: str | None = None
    previous_connection_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartSession:
    """Run the session start (profile mount, display) and report back."""


@dataclass(frozen=True)
class EndSession:
    """The session is over: release its display and record the final code."""

    code: int


@dataclass(frozen=True)
class Deliver:
    """Hand a terminal message (input, clipboard, shipped events) to the host side."""

    connection_id: str
    message: dict[str, Any]


@dataclass(frozen=True)
class Relayout:
    """The session's monitors changed: size the screen to hold them all and give each
    connection its own region of it."""

    monitors: tuple[Monitor, ...]


Action = Send | Close | Log | StartSession | EndSession | Deliver | Relayout
