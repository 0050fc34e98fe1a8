"""The event log: one JSON object per line, append-only, flushed per event.

Both sides write the same record so one session's timeline spans server and terminal.
The reader never fails on a bad line: it reports where it was and goes on.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from openfrp import codes

SOURCES = ("server", "terminal", "signaling")
SEVERITIES = ("debug", "info", "warning", "error", "critical")
FIELDS = (
    "ts",
    "source",
    "host",
    "session_id",
    "connection_id",
    "previous_connection_id",
    "user",
    "account",
    "launchpad",
    "frp",
    "event",
    "code",
    "severity",
    "message",
    "attrs",
)


def format_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Event:
    event: str
    source: str = "server"
    ts: str = field(default_factory=now_ts)
    host: str | None = None
    session_id: str | None = None
    connection_id: str | None = None
    previous_connection_id: str | None = None
    user: str | None = None
    account: str | None = None
    launchpad: str | None = None
    frp: int | None = None
    code: int | None = None
    severity: str = "info"
    message: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Build an event from a decoded line; raise ValueError naming the bad field."""
        if not isinstance(data, dict):
            raise ValueError("line is not a JSON object")
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        for name in ("event", "ts", "source"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"field '{name}' must be a string")
        parse_ts(data["ts"])
        code = data.get("code")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise ValueError("field 'code' must be an integer or null")
        frp = data.get("frp")
        if frp is not None and frp not in (7, 8):
            raise ValueError("field 'frp' must be 7, 8 or null")
        attrs = data.get("attrs", {})
        if not isinstance(attrs, dict):
            raise ValueError("field 'attrs' must be an object")
        for name in ("host", "session_id", "connection_id", "previous_connection_id", "user",
                     "account", "launchpad", "message"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ValueError(f"field '{name}' must be a string or null")
        return cls(**data)


def code_event(event: str, code: int, **fields: Any) -> Event:
    """An event that carries a table code, with severity and message taken from the table."""
    row = codes.get(code)
    severity = "info" if row.kind is codes.Kind.INFO else "error"
    fields.setdefault("severity", severity)
    fields.setdefault("message", row.message)
    attrs = dict(fields.pop("attrs", {}) or {})
    attrs.setdefault("code_name", row.name)
    return Event(event=event, code=code, attrs=attrs, **fields)


class EventLog:
    """Append-only JSONL writer; every event is flushed to the OS before write() returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def write_raw(self, data: dict[str, Any]) -> None:
        """Append an event received from elsewhere (a shipped terminal event) after checking it."""
        self.write(Event.from_dict(data))

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class BadLine:
    path: str
    line: int
    reason: str


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def read_events(
    path: str | os.PathLike[str], bad: list[BadLine] | None = None
) -> Iterator[Event]:
    """Yield the events of a JSONL file (plain or gzip); bad lines go to `bad`, not raised."""
    source = Path(path)
    with _open_text(source) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Event.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                if bad is not None:
                    bad.append(BadLine(str(source), number, str(exc)))
