"""The event log: one JSON object per line, append-only, flushed per event.

Both sides write the same record so one session's timeline spans server and terminal.
The reader never fails on a bad line: it reports where it was and goes on.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from openfrp import codes

SOURCES = ("server", "terminal", "signaling")

# The event vocabulary both sides write and the analyzer reads. An event that carries a code
# says which code that side saw or produced.
NAMES: dict[str, str] = {
    "server.started": "server: the server process is listening (attrs.url)",
    "server.stopping": "server: the process was told to stop; live sessions end with 4019",
    "session.created": "server: a session was launched for a user on a launchpad",
    "session.starting": "server: profile mount and display start are running",
    "session.started": "server: the session is active (attrs.time_to_start_ms)",
    "session.warning": "either side: max_session_duration is near (attrs.seconds_left)",
    "session.disconnected": "server: the connection was lost, the session waits for a resume",
    "session.resumed": "server: a new connection resumed the session",
    "session.ended": "server: the session is over; code is the final code",
    "connection.opened": "server: a transport connection arrived (attrs.remote)",
    "connection.established": "either side: hello/welcome done (attrs.client, attrs.resume)",
    "connection.rejected": "server: a connection was refused before it joined (4002/4006/4009)",
    "connection.closed": "either side: a connection ended; code is its close code",
    "receive.timeout": "server: receive_timeout passed with nothing received (attrs.count)",
    "display.ready": "server: the session's display runs (attrs.kind, display, pid, replaces)",
    "display.changed": "server: the row of monitors changed; each secondary window must "
    "acknowledge it within display_change_timeout, else 4028 (attrs.change_id, reason, monitors)",
    "display.layout": "server: the screen now holds that row: its size and each monitor's "
    "region as [index, x, y, width, height] (attrs.width, height, monitors; or attrs.error)",
    "monitor.opened": "terminal: Add monitor opened a window for a secondary monitor "
    "(attrs.monitor)",
    "video.error": "server: a capture or encode step failed (attrs.error)",
    "events.rejected": "server: shipped terminal events that failed validation (attrs.rejected)",
    "error.exception": "server: an unexpected exception (attrs.where, attrs.error)",
    "input.dropped": "server: keyboard/mouse events beyond the input queue's bound were cut and "
    "held keys let go (attrs.dropped, attrs.limit, attrs.over)",
    "clipboard.transfer": "server: clipboard text crossed (attrs.direction to_session or "
    "from_session, attrs.bytes; never the text)",
    "clipboard.refused": "either side: clipboard text did not cross: policy, size limit, no "
    "display or no terminal; the terminal logs what the server told it, and text it did not "
    "send, over clipboard_limit or one control message (attrs.direction, attrs.bytes, "
    "attrs.reason)",
    "clipboard.stopped": "server: the clipboard client lost a display that had gone (attrs.error)",
    "file.transfer": "server/terminal: a file crossed (attrs.direction, attrs.bytes, attrs.name)",
    "file.refused": "server: a file did not cross: policy, size limit, a bad chunk, a write "
    "error, the terminal left (attrs.direction, attrs.bytes, attrs.reason)",
    "clipboard.sent": "terminal: clipboard text was sent to the session (attrs.bytes)",
    "clipboard.received": "terminal: clipboard text came from the session (attrs.bytes)",
    "connect.attempt": "terminal: a connection attempt starts (attrs.url)",
    "connect.failed": "terminal: no session within connect_timeout (4101)",
    "connect.retry": "terminal: a first connection attempt failed; retrying within the window",
    "message.invalid": "terminal: the server sent a message it could not decode",
    "connection.lost": "terminal: keepalive lost or dropped without close (4102)",
    "reconnect.attempt": "terminal: a reconnect attempt (4103; attrs.attempt, attrs.delay_ms)",
    "reconnect.succeeded": "terminal: the session was resumed (attrs.attempts, recovery_ms)",
    "reconnect.gave_up": "terminal: reconnect exhausted or refused (4106; a refusal's "
    "attrs.refused_code, attrs.refused_reason; else attrs.all_refused, true when every attempt "
    "found nothing listening, and attrs.last_error)",
    "message.shown": "terminal: a pop-up message was shown to the person (code)",
    "probe.stun": "either side: STUN binding probe result (5009 on failure; attrs.rtt_ms)",
    "probe.turn": "either side: TURN allocate probe result (5010 on failure)",
    "probe.signaling": "either side: signaling hub probe (4101 unreachable, 4107 no server peer)",
    "probe.failed": "either side: both STUN and TURN failed (5019)",
    "probe.frp7": "netcheck: an FRP7 session's WebSocket opened or not (4101 when not; "
    "attrs.status: the HTTP status a proxy answered the upgrade with)",
    "signaling.timeout": "terminal: signaling did not get the server peer id (4107)",
    "ice.disconnected": "terminal: heartbeat or ICE reports the path lost (4108)",
    "ice.failed": "either side: no candidate pair works (5006)",
    "negotiation.timeout": "either side: offer/answer not complete in time (5007)",
    "peer.failed": "either side: DTLS/SCTP failed after ICE (5008)",
    "transport.fallback": "terminal: an FRP8 setup failed (code); the session goes on over FRP7",
    "peer.answered": "server: the FRP8 peer answered a terminal's offer (attrs.relay; "
    "attrs.video_track: the codec of the display's video track, null without one)",
    "stats": "either side: the stream over the last period, or the whole session when "
    "attrs.final (attrs.fps, mbit_s, frames_dropped, codec, rtt_ms, width, height)",
    "video.keyframe_requested": "terminal: a frame could not be decoded (a gap, a decoder "
    "error, decoding behind) and a keyframe was asked for (attrs.reason)",
    "peer.opened": "either side: the FRP8 control channel is open (attrs.setup_ms)",
    "signaling.registered": "signaling, server: a server peer registered (attrs.host, peer_id)",
    "signaling.unregistered": "signaling, server: a server peer's registration ended",
    "signaling.joined": "signaling: a terminal asked for a session's server peer (attrs.host)",
    "signaling.rejected": "signaling: a registration or join was refused (attrs.reason)",
}
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
# Fields that hold a string or null; the others are typed (ts, frp, code, severity, attrs)
# or required (source, event).
TEXT_FIELDS = tuple(
    name
    for name in FIELDS
    if name not in ("ts", "source", "frp", "event", "code", "severity", "attrs")
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
        try:
            parse_ts(data["ts"])
        except ValueError:
            raise ValueError(f"field 'ts' is not an ISO 8601 time: {data['ts']!r}") from None
        if data.get("severity", "info") not in SEVERITIES:
            raise ValueError(f"field 'severity' must be one of {', '.join(SEVERITIES)}")
        code = data.get("code")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise ValueError("field 'code' must be an integer or null")
        frp = data.get("frp")
        if frp is not None and (not isinstance(frp, int) or frp not in (7, 8)):
            raise ValueError("field 'frp' must be 7, 8 or null")
        attrs = data.get("attrs", {})
        if not isinstance(attrs, dict):
            raise ValueError("field 'attrs' must be an object")
        for name in TEXT_FIELDS:
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ValueError(f"field '{name}' must be a string or null")
        return cls(**data)


def _from_table(
    code: int | None, severity: str | None, message: str | None
) -> tuple[str, str | None]:
    """Severity and message for an event, defaulting to the code's row when it has one."""
    row = codes.lookup(code) if code is not None else None
    if row is None:
        return severity or "info", message
    return severity or row.severity, message or row.message


def code_event(event: str, code: int, **fields: Any) -> Event:
    """An event that carries a table code, with severity and message taken from the table."""
    row = codes.get(code)
    fields["severity"], fields["message"] = _from_table(
        code, fields.get("severity"), fields.get("message")
    )
    attrs = dict(fields.pop("attrs", {}) or {})
    attrs.setdefault("code_name", row.name)
    return Event(event=event, code=code, attrs=attrs, **fields)


@dataclass(frozen=True)
class Context:
    """The identity one side stamps on each of its events (server or terminal)."""

    source: str
    host: str | None
    session_id: str
    user: str | None
    account: str | None
    launchpad: str | None
    frp: int

    def event(
        self,
        name: str,
        *,
        code: int | None = None,
        severity: str | None = None,
        message: str | None = None,
        connection_id: str | None = None,
        previous_connection_id: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> Event:
        severity, message = _from_table(code, severity, message)
        return Event(
            event=name,
            source=self.source,
            host=self.host,
            session_id=self.session_id,
            connection_id=connection_id,
            previous_connection_id=previous_connection_id,
            user=self.user,
            account=self.account,
            launchpad=self.launchpad,
            frp=self.frp,
            code=code,
            severity=severity,
            message=message,
            attrs=attrs or {},
        )


def _reason(exc: OSError | ValueError) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


class EventLog:
    """Append-only JSONL writer; every event is flushed to the OS before write() returns.

    With `max_bytes`, a file that reaches it is rotated (PATH.1 the newest of `keep` old ones)
    so a busy log cannot fill the disk; `reopen()` follows an outside rotation (logrotate
    moves the file, then the server gets SIGHUP).

    A write that fails (the disk is full) never stops the caller: `failing` says why, stderr
    says so once, the events are counted, and the first write that works again is preceded by
    a `log.gap` event with how many were lost and when."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 0, keep: int = 5) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._keep = keep
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.failing: str | None = None
        self._lost = 0
        self._lost_since: str | None = None

    def write(self, event: Event) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            try:
                if self._file.closed:  # a reopen that failed: open it now, or say why not
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write((self._gap() if self._lost else "") + line)
                self._file.flush()
            except (OSError, ValueError) as exc:  # ValueError: a file that could not reopen
                self._lose(exc)
                return
            if self.failing is not None:
                self.failing = None
                print(f"openfrp: event log {self.path}: writes work again", file=sys.stderr)
            self._lost, self._lost_since = 0, None
            if self._max_bytes and self._file.tell() >= self._max_bytes:
                self._rotate()

    def recovered(self) -> bool:
        """Whether the log can be written (again): while it was failing, try to write the
        record of the gap now, without waiting for the next event."""
        with self._lock:
            if self.failing is None:
                return True
            try:
                if self._file.closed:  # the folder was gone: opened once it is back
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(self._gap())
                self._file.flush()
            except (OSError, ValueError):
                with contextlib.suppress(OSError, ValueError):
                    self._file.close()
                with contextlib.suppress(OSError):
                    self._file = self.path.open("a", encoding="utf-8")
                return False
            self.failing, self._lost, self._lost_since = None, 0, None
            print(f"openfrp: event log {self.path}: writes work again", file=sys.stderr)
            return True

    def _lose(self, exc: OSError | ValueError) -> None:
        """Count the event as lost and start afresh: whatever the failed write left buffered
        must not reach the file later."""
        if self.failing is None:
            print(
                f"openfrp: event log {self.path}: write failed ({_reason(exc)}): "
                "events are being lost until it can be written again",
                file=sys.stderr,
            )
        self.failing = f"{type(exc).__name__}: {_reason(exc)}"
        self._lost += 1
        self._lost_since = self._lost_since or now_ts()
        with contextlib.suppress(OSError, ValueError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._file = self.path.open("a", encoding="utf-8")

    def _gap(self) -> str:
        """The record of the events lost, after whatever partial line a failure left."""
        partial = ""
        with contextlib.suppress(OSError), self.path.open("rb") as done:
            size = done.seek(0, os.SEEK_END)
            if size:
                done.seek(size - 1)
                partial = "" if done.read(1) == b"\n" else "\n"
        gap = Event(
            "log.gap",
            severity="error",
            message=f"{self._lost} event(s) could not be written to this log",
            attrs={
                "lost": self._lost,
                "since": self._lost_since,
                "until": now_ts(),
                "error": self.failing,
            },
        )
        return partial + gap.to_json() + "\n"

    def reopen(self) -> None:
        """Write on in a new file at the path (SIGHUP after logrotate). One that cannot be
        opened (its folder is gone) raises nothing: the next write fails with the reason and
        counts as lost, and the writes after it try again."""
        with self._lock:
            with contextlib.suppress(OSError, ValueError):
                self._file.close()
            with contextlib.suppress(OSError):
                self._file = self.path.open("a", encoding="utf-8")

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self._keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self._keep:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._file = self.path.open("a", encoding="utf-8")

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


def read_events(path: str | os.PathLike[str], bad: list[BadLine] | None = None) -> Iterator[Event]:
    """Yield the events of a JSONL file (plain or gzip); bad lines go to `bad`, not raised."""
    source = Path(path)
    number = 0
    with _open_text(source) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield Event.from_dict(json.loads(line))
                except (ValueError, TypeError) as exc:
                    if bad is not None:
                        bad.append(BadLine(str(source), number, str(exc)))
        except (EOFError, OSError) as exc:
            # A damaged or cut-off gzip file: keep what was read, report where it stopped.
            if bad is not None:
                bad.append(BadLine(str(source), number + 1, f"file unreadable from here: {exc}"))
