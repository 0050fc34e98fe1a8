"""The server side of one session, from launch to its final code.

`created -> starting -> active <-> disconnected -> ended(code)`. One primary connection at a
time carries the session (secondary monitors ride beside it: protocol/monitors.py);
reliable messages are numbered, kept until acknowledged, replayed on resume, and their
unacknowledged bytes are what `send_buffer_limit` (4003) measures. A session nobody opened
waits for its first terminal as long as its link works (`open_timeout`), then ends with 4019
saying so: `idle_timeout` (4009) counts only from a disconnect.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from openfrp import PROTOCOL_VERSION, codes
from openfrp.codes import CodeNumber
from openfrp.protocol import messages
from openfrp.protocol.actions import (
    Action,
    Close,
    Deliver,
    EndSession,
    Log,
    Relayout,
    Send,
    StartSession,
)
from openfrp.protocol.handshake import Issued, check_hello
from openfrp.protocol.input import parse_input
from openfrp.protocol.monitors import Monitors, size_of
from openfrp.protocol.timers import Deadlines, ms
from openfrp.settings import SessionSettings

ENDING_FAULTS = {
    CodeNumber.SERVER_START_ERROR,
    CodeNumber.SERVER_CONTROL_ERROR,
    CodeNumber.SERVER_AUX_ERROR,
    CodeNumber.PROFILE_MOUNT_FAILED,
    CodeNumber.DISPLAY_NOT_READY,
}
CONNECTION_FAULTS = {
    CodeNumber.VIDEO_STREAM_ERROR,
    CodeNumber.RECEIVE_ERROR,
    CodeNumber.SEND_ERROR,
    CodeNumber.FRP8_ERROR,
}
HOST_ENDS = {CodeNumber.GUEST_SHUTDOWN, CodeNumber.GUEST_LOGOFF, CodeNumber.CLOSED_REMOTELY}
# The reason of a session that ended unopened (4019); the analyzer's rules read it.
UNOPENED = "the session's link was never opened"


class SessionState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    ENDED = "ended"


MAX_LOGGED = 200  # characters of a terminal's text that go into the log


def clip(text: str) -> str:
    """A terminal's text as the log keeps it: a hostile terminal cannot grow the log with it."""
    return text if len(text) <= MAX_LOGGED else f"{text[:MAX_LOGGED]}... ({len(text)} chars)"


def _clipped(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: clip(v) if isinstance(v, str) else v for k, v in attrs.items()}


class ServerSession:
    def __init__(
        self,
        issued: Issued,
        settings: SessionSettings,
        secret: bytes,
        now_ms: int,
        version: int = PROTOCOL_VERSION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: UNIX seconds, what a token's expiry is checked against at `hello`."""
        self.issued = issued
        self._clock = clock
        self.settings = settings
        self._secret = secret
        self._version = version
        self.token_generation = 0  # tokens of older generations are revoked
        self.state = SessionState.CREATED
        self.created_ms = now_ms
        self.started_ms: int | None = None
        self.final_code: int | None = None
        self.primary: str | None = None
        self.last_primary: str | None = None
        self.pending: set[str] = set()
        self._closing: set[str] = set()
        self.deadlines = Deadlines()
        self._receive_misses = 0
        self._ping_id = 0
        self._video_failures = 0
        self.out_seq = 0
        self.unacked: deque[tuple[int, dict[str, Any], int]] = deque()
        self.unacked_bytes = 0
        self.monitors = Monitors()
        self.deadlines.set("unopened", now_ms + ms(settings.unopened_for))

    # -- queries ---------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self.deadlines.next_deadline()

    @property
    def ended(self) -> bool:
        return self.state is SessionState.ENDED

    # -- connections -----------------------------------------------------------------------

    def connection_opened(self, cid: str, now_ms: int, attrs: dict[str, Any]) -> list[Action]:
        self.pending.add(cid)
        self.deadlines.set(f"handshake:{cid}", now_ms + ms(self.settings.handshake_timeout))
        return [Log("connection.opened", connection_id=cid, attrs=attrs)]

    def receive(self, cid: str, data: str | bytes, now_ms: int) -> list[Action]:
        """A frame arrived on connection `cid`."""
        if cid in self._closing:
            return []
        if cid in self.pending:
            return self._receive_hello(cid, data, now_ms)
        if cid in self.monitors.secondaries:
            return self._receive_secondary(cid, data, now_ms)
        if cid != self.primary:
            return []
        self._heard(now_ms)
        try:
            message = messages.decode_from_terminal(data)
            if message["type"] == "hello":
                raise messages.MessageError("hello after the handshake")
            if message["type"] == "input":
                parse_input(message)
        except messages.MessageError as exc:
            return self._lose_connection(cid, CodeNumber.RECEIVE_ERROR, now_ms, {"error": str(exc)})
        return self._on_message(cid, message, now_ms)

    def hello_fits(self, data: str | bytes) -> bool:
        """Whether `data` is a hello this session would accept; changes nothing."""
        try:
            hello = messages.decode_from_terminal(data)
        except messages.MessageError:
            return False
        return (
            hello["type"] == "hello"
            and not self.ended
            and (
                check_hello(
                    hello,
                    self.issued,
                    self._secret,
                    self._version,
                    self.token_generation,
                    self._clock(),
                )
                is None
            )
        )

    def refuse_duplicate(
        self, cid: str, owner_connection: str, where: dict[str, Any] | None = None
    ) -> list[Action]:
        """Refuse a newcomer because the token owner is live elsewhere (policy `refuse`);
        `where` adds attributes naming that live connection's session and host."""
        self.pending.discard(cid)
        self.deadlines.cancel(f"handshake:{cid}")
        return self._reject(
            cid,
            CodeNumber.ALREADY_IN_SESSION,
            {"live_connection_id": owner_connection, **(where or {})},
        )

    def displace(self, reason: str, now_ms: int) -> list[Action]:
        """Close the primary connection with 4006 because a newer one took over."""
        if self.primary is None:
            return []
        return self._lose_connection(
            self.primary, CodeNumber.ALREADY_IN_SESSION, now_ms, {"reason": reason}
        )

    def revoke_tokens(self, reason: str, now_ms: int) -> list[Action]:
        """Refuse every token issued so far (a leaked link, a user to cut off) from now on.

        Every live connection came in with one of them, so each is ended with 4002, the code
        of a token the server no longer takes; the session waits for a terminal with a new
        token (idle_timeout), and a session nobody opened waits its open time again, for the
        new link. An operator's act, not a loss: `session.disconnected` carries no code."""
        if self.ended:
            return []
        self.token_generation += 1
        attrs = {"reason": reason, "generation": self.token_generation}
        actions: list[Action] = [
            Log(
                "tokens.revoked",
                severity="warning",
                message="every token issued so far for this session was revoked",
                attrs=attrs,
            )
        ]
        code = CodeNumber.CONFIG_MISMATCH
        for secondary in list(self.monitors.secondaries):
            actions += self._drop_secondary(secondary, code, now_ms, attrs)
        if self.primary is not None:
            actions += self._close_primary(code, attrs)
            actions += self._become_disconnected(None, now_ms, attrs)
        if self.state is SessionState.CREATED:
            self.deadlines.set("unopened", now_ms + ms(self.settings.unopened_for))
        return actions

    def connection_lost(self, cid: str, now_ms: int, peer_code: int | None) -> list[Action]:
        """The transport of `cid` is gone; `peer_code` is the peer's close code if it sent one."""
        self.deadlines.cancel(f"handshake:{cid}")
        if cid in self._closing:
            self._closing.discard(cid)
            return []
        if cid in self.pending:
            self.pending.discard(cid)
            return [
                Log(
                    "connection.closed",
                    connection_id=cid,
                    attrs={"peer_code": peer_code, "before_hello": True},
                )
            ]
        if cid in self.monitors.secondaries:
            index = self.monitors.secondaries[cid]
            self._forget_secondary(cid)
            attrs = {"peer_code": peer_code, "monitor": index}
            log = Log("connection.closed", connection_id=cid, attrs=attrs)
            return [log, *self._display_changed(now_ms, f"monitor {index} left")]
        if cid != self.primary:
            return []
        if peer_code is None:
            return self._lose_connection(
                cid,
                CodeNumber.CONNECTION_LOST,
                now_ms,
                {"reason": "no close frame"},
                send_close=False,
            )
        peer = codes.lookup(peer_code)
        if peer is not None and peer.component is codes.Component.TERMINAL:
            # The terminal gave the connection up (its 4102, say): for the server the path
            # dropped under the session, which is 4029; the terminal's word stays beside it.
            gave_up = {"reason": "the terminal gave the connection up", "peer_code": peer_code}
            return self._lose_connection(
                cid, CodeNumber.CONNECTION_LOST, now_ms, gave_up, send_close=False
            )
        self._detach_primary()
        actions: list[Action] = [
            Log("connection.closed", connection_id=cid, attrs={"peer_code": peer_code}),
        ]
        return actions + self._become_disconnected(None, now_ms, {"peer_code": peer_code})

    def queue_overflow(self, cid: str, queued_bytes: int, now_ms: int) -> list[Action]:
        """Bytes waiting to be written to `cid` (pongs, replies, frames: anything) passed
        send_buffer_limit: the terminal does not read. 4003, aborted (no close handshake)."""
        attrs = {
            "queued_bytes": queued_bytes,
            "limit": self.settings.send_buffer_limit,
            "queue": "transport",
        }
        if cid == self.primary:
            return self._lose_connection(
                cid, CodeNumber.SEND_BUFFER_OVERFLOW, now_ms, attrs, abort=True
            )
        self.pending.discard(cid)
        self.deadlines.cancel(f"handshake:{cid}")
        self._closing.add(cid)
        return [
            Log(
                "connection.closed",
                code=CodeNumber.SEND_BUFFER_OVERFLOW,
                connection_id=cid,
                attrs=attrs,
            ),
            Close(
                cid,
                CodeNumber.SEND_BUFFER_OVERFLOW,
                _name(CodeNumber.SEND_BUFFER_OVERFLOW),
                abort=True,
            ),
        ]

    def send_failed(self, cid: str, error: str, now_ms: int) -> list[Action]:
        if cid != self.primary:
            return []
        return self._lose_connection(cid, CodeNumber.SEND_ERROR, now_ms, {"error": error})

    # -- session start and host side -------------------------------------------------------

    def start_succeeded(self, now_ms: int) -> list[Action]:
        if self.state is not SessionState.STARTING:
            return []
        self.started_ms = now_ms
        s = self.settings
        self.deadlines.set("max_duration", now_ms + ms(s.max_session_duration))
        if s.warn_before > 0:
            self.deadlines.set("warning", now_ms + ms(s.max_session_duration - s.warn_before))
        attrs = {"time_to_start_ms": now_ms - self.created_ms}
        actions: list[Action] = [Log("session.started", attrs=attrs)]
        if self.primary is None:
            self.state = SessionState.DISCONNECTED
            return actions + self._become_disconnected(
                None, now_ms, {"reason": "left during start"}
            )
        self.state = SessionState.ACTIVE
        self._heard(now_ms)
        self.deadlines.set("heartbeat", now_ms + ms(s.heartbeat_interval))
        # Messages pushed while starting were queued, not sent: send them now, in order.
        queued = [Send(self.primary, message) for _, message, _ in self.unacked]
        return [*actions, Send(self.primary, {"type": "started"}), *queued]

    def start_failed(self, code: int, error: str, now_ms: int) -> list[Action]:
        if code not in (
            CodeNumber.SERVER_START_ERROR,
            CodeNumber.PROFILE_MOUNT_FAILED,
            CodeNumber.DISPLAY_NOT_READY,
        ):
            raise ValueError(f"{code} is not a session start failure")
        return self._end(code, now_ms, {"error": error})

    def host_event(self, code: int, reason: str, now_ms: int) -> list[Action]:
        """Guest shutdown (4015), logoff or app exit (4018), outside close (4019)."""
        if code not in HOST_ENDS:
            raise ValueError(f"{code} is not a host event")
        return self._end(code, now_ms, {"reason": reason})

    def fault(
        self, code: int, where: str, error: str, now_ms: int, detail: str | None = None
    ) -> list[Action]:
        """An unexpected failure in a part of the session; the code says which part.

        `detail` (a traceback, say) goes to the log only, never to the terminal."""
        if self.ended:
            return []
        attrs = {"where": where, "error": error}
        if detail is not None:
            attrs["detail"] = detail
        log = Log("error.exception", code=code, attrs=attrs)
        if code in CONNECTION_FAULTS:
            if self.primary is None:
                return [log]
            return [log, *self._lose_connection(self.primary, code, now_ms, {"where": where})]
        if code in ENDING_FAULTS:
            return [log, *self._end(code, now_ms, {"where": where})]
        raise ValueError(f"{code} is not a fault code")

    def video_result(self, ok: bool, error: str, now_ms: int) -> list[Action]:
        """Count consecutive capture/encode failures; too many in a row is 4011."""
        if ok:
            self._video_failures = 0
            return []
        self._video_failures += 1
        actions: list[Action] = [
            Log(
                "video.error",
                severity="warning",
                attrs={"error": error, "consecutive": self._video_failures},
            ),
        ]
        if self._video_failures >= self.settings.video_failure_limit:
            self._video_failures = 0
            actions += self.fault(CodeNumber.VIDEO_STREAM_ERROR, "video", error, now_ms)
        return actions

    def push(self, body: dict[str, Any], now_ms: int) -> list[Action]:
        """Queue a reliable message for the terminal; it is kept until acknowledged."""
        if self.ended:
            return []
        self.out_seq += 1
        message = {"type": "msg", "seq": self.out_seq, "body": body}
        size = len(messages.encode(message))
        self.unacked.append((self.out_seq, message, size))
        self.unacked_bytes += size
        if self.unacked_bytes <= self.settings.send_buffer_limit:
            live = self._live()
            return [Send(live, message)] if live is not None else []
        attrs = {"unacked_bytes": self.unacked_bytes, "limit": self.settings.send_buffer_limit}
        if self.primary is None:
            return self._end(CodeNumber.SEND_BUFFER_OVERFLOW, now_ms, attrs)
        # A reader that does not read cannot take a close handshake either: abort it.
        return self._lose_connection(
            self.primary, CodeNumber.SEND_BUFFER_OVERFLOW, now_ms, attrs, abort=True
        )

    # -- time ------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Action]:
        actions: list[Action] = []
        for name in self.deadlines.pop_due(now_ms):
            # After the end only the handshake deadlines of pending connections still matter.
            if self.ended and not name.startswith("handshake:"):
                continue
            actions += self._fire(name, now_ms)
        return actions

    def _fire(self, name: str, now_ms: int) -> list[Action]:
        s = self.settings
        if name.startswith("handshake:"):
            cid = name.partition(":")[2]
            self.pending.discard(cid)
            return self._reject(
                cid, CodeNumber.CONFIG_MISMATCH, {"field": "hello", "problem": "no hello in time"}
            )
        if name == "idle":
            return self._end(CodeNumber.IDLE_TIMEOUT, now_ms, {"idle_timeout_s": s.idle_timeout})
        if name == "unopened":
            waited = s.unopened_for
            reason = f"{UNOPENED}: no terminal joined within {waited:g} s of its link's issue"
            return self._end(
                CodeNumber.CLOSED_REMOTELY, now_ms, {"reason": reason, "open_timeout_s": waited}
            )
        if name == "max_duration":
            return self._end(
                CodeNumber.MAX_SESSION_DURATION,
                now_ms,
                {"max_session_duration_s": s.max_session_duration},
            )
        if name == "warning":
            left = round(s.warn_before)
            warning = {
                "type": "warning",
                "code": CodeNumber.MAX_SESSION_DURATION,
                "seconds_left": left,
            }
            actions: list[Action] = [
                Log(
                    "session.warning",
                    code=CodeNumber.MAX_SESSION_DURATION,
                    severity="warning",
                    attrs={"seconds_left": left},
                ),
            ]
            live = self._live()
            return actions + ([Send(live, warning)] if live is not None else [])
        if name.startswith("display_change:"):
            cid = name.partition(":")[2]
            if cid not in self.monitors.awaiting:
                return []
            attrs = {
                "monitor": self.monitors.secondaries[cid],
                "change_id": self.monitors.awaiting[cid],
                "display_change_timeout_s": s.display_change_timeout,
            }
            return self._drop_secondary(cid, CodeNumber.SECONDARY_DISPLAY_TIMEOUT, now_ms, attrs)
        if name == "heartbeat" and self.primary is not None:
            self._ping_id += 1
            self.deadlines.set("heartbeat", now_ms + ms(s.heartbeat_interval))
            ping = {"type": "ping", "id": self._ping_id}
            return [Send(cid, ping) for cid in (self.primary, *self.monitors.secondaries)]
        if name == "receive" and self.primary is not None:
            self._receive_misses += 1
            log = Log(
                "receive.timeout",
                severity="warning",
                connection_id=self.primary,
                attrs={"count": self._receive_misses, "limit": s.max_receive_timeouts},
            )
            if self._receive_misses >= s.max_receive_timeouts:
                return [
                    log,
                    *self._lose_connection(
                        self.primary,
                        CodeNumber.RECEIVE_TIMEOUTS,
                        now_ms,
                        {"receive_timeouts": self._receive_misses},
                        abort=True,
                    ),
                ]
            self.deadlines.set("receive", now_ms + ms(s.receive_timeout))
            return [log]
        return []

    # -- internals -------------------------------------------------------------------------

    def _live(self) -> str | None:
        """The connection that may receive session messages now, if any."""
        return self.primary if self.state is SessionState.ACTIVE else None

    def _heard(self, now_ms: int) -> None:
        self._receive_misses = 0
        if self.state is SessionState.ACTIVE:
            self.deadlines.set("receive", now_ms + ms(self.settings.receive_timeout))

    def _reject(
        self, cid: str, code: int, attrs: dict[str, Any], reason: str | None = None
    ) -> list[Action]:
        self._closing.add(cid)
        return [
            Log("connection.rejected", code=code, connection_id=cid, attrs=_clipped(attrs)),
            Close(cid, code, reason or _name(code)),
        ]

    def _receive_hello(self, cid: str, data: str | bytes, now_ms: int) -> list[Action]:
        self.pending.discard(cid)
        self.deadlines.cancel(f"handshake:{cid}")
        try:
            hello = messages.decode_from_terminal(data)
            if hello["type"] != "hello":
                raise messages.MessageError(f"expected hello, got {hello['type']}")
        except messages.MessageError as exc:
            return self._reject(
                cid, CodeNumber.CONFIG_MISMATCH, {"field": "hello", "problem": str(exc)}
            )
        if self.ended:
            assert self.final_code is not None
            return self._reject(
                cid,
                self.final_code,
                {"reason": "session has ended"},
                codes.ended_reason(self.final_code),
            )
        mismatch = check_hello(
            hello, self.issued, self._secret, self._version, self.token_generation, self._clock()
        )
        if mismatch is not None:
            return self._reject(
                cid, CodeNumber.CONFIG_MISMATCH, {"field": mismatch[0], "problem": mismatch[1]}
            )
        if hello.get("monitor"):
            return self._admit_secondary(cid, hello, now_ms)
        actions: list[Action] = []
        previous = self.primary
        if previous is not None:
            same_terminal = hello.get("resume") and hello.get("previous_connection_id") == previous
            if not same_terminal and self.settings.duplicate_policy == "refuse":
                return self._reject(
                    cid, CodeNumber.ALREADY_IN_SESSION, {"live_connection_id": previous}
                )
            code, reason = (
                (CodeNumber.CONNECTION_LOST, "replaced by a resume from the same terminal")
                if (same_terminal)
                else (CodeNumber.ALREADY_IN_SESSION, "taken over by a newer connection")
            )
            actions += self._lose_connection(previous, code, now_ms, {"reason": reason}, abort=True)
        return actions + self._accept(cid, hello, now_ms)

    def _accept(self, cid: str, hello: dict[str, Any], now_ms: int) -> list[Action]:
        self.deadlines.cancel("idle")
        self.deadlines.cancel("unopened")
        self.primary = cid
        self.monitors.resize(0, size_of(hello.get("screen")) or self.monitors.sizes[0])
        client = clip(hello.get("client", "unknown"))
        resume = self.state is SessionState.DISCONNECTED
        state = "active" if resume else self.state.value
        if self.state is SessionState.CREATED:
            state = SessionState.STARTING.value
        welcome = {
            "type": "welcome",
            "session_id": self.issued.session_id,
            "connection_id": cid,
            "resume": resume,
            "state": state,
            "last_seq": self.out_seq,
        }
        attrs = {"client": client, "resume": resume}
        actions: list[Action] = [
            Log(
                "connection.established",
                connection_id=cid,
                previous_connection_id=self.last_primary,
                attrs=attrs,
            ),
            Send(cid, welcome),
        ]
        if self.state is SessionState.CREATED:
            self.state = SessionState.STARTING
            return [*actions, Log("session.starting", connection_id=cid), StartSession()]
        if self.state is SessionState.STARTING:
            return actions
        self.state = SessionState.ACTIVE
        self._heard(now_ms)
        self.deadlines.set("heartbeat", now_ms + ms(self.settings.heartbeat_interval))
        if resume:
            actions.append(
                Log(
                    "session.resumed",
                    connection_id=cid,
                    previous_connection_id=self.last_primary,
                    attrs={"replayed": self._replay_count(hello)},
                )
            )
            actions.append(Send(cid, {"type": "started"}))
            actions += self._repeat_warning(cid, now_ms)
        self._drop_acked(hello.get("last_seq", 0))
        actions += [Send(cid, message) for _, message, _ in self.unacked]
        if self.monitors.secondaries:  # monitor 0 has a new window, perhaps of a new size
            actions += self._display_changed(now_ms, "primary window replaced")
        return actions

    def _repeat_warning(self, cid: str, now_ms: int) -> list[Action]:
        """A terminal that was away when the 4008 warning fired still gets it on resume."""
        end = self.deadlines.get("max_duration")
        if (
            end is None
            or self.deadlines.get("warning") is not None
            or self.settings.warn_before <= 0
        ):
            return []
        left = max(0, (end - now_ms) // 1000)
        return [
            Send(
                cid,
                {"type": "warning", "code": CodeNumber.MAX_SESSION_DURATION, "seconds_left": left},
            )
        ]

    def _replay_count(self, hello: dict[str, Any]) -> int:
        last = hello.get("last_seq", 0)
        return sum(1 for seq, _, _ in self.unacked if seq > last)

    def _drop_acked(self, seq: int) -> None:
        while self.unacked and self.unacked[0][0] <= seq:
            self.unacked_bytes -= self.unacked.popleft()[2]

    def _on_message(self, cid: str, message: dict[str, Any], now_ms: int) -> list[Action]:
        kind = message["type"]
        if kind == "ping":
            return [Send(cid, {"type": "pong", "id": message["id"]})]
        if kind == "ack":
            self._drop_acked(message["seq"])
            return []
        if kind == "close":
            return self._end(CodeNumber.USER_CLOSED, now_ms, {"connection_id": cid})
        if kind == "disconnect":
            self._detach_primary()
            self._closing.add(cid)
            actions: list[Action] = [
                Log(
                    "connection.closed", connection_id=cid, attrs={"reason": "terminal disconnect"}
                ),
                Close(cid, 1000, "DISCONNECTED"),
            ]
            return actions + self._become_disconnected(
                None, now_ms, {"reason": "terminal disconnect"}
            )
        if kind == "pong":
            return []
        if kind == "resize":
            size = (message["width"], message["height"])
            if self.monitors.resize(0, size) and self.monitors.secondaries:
                return [Deliver(cid, message), *self._display_changed(now_ms, "primary resized")]
        return [Deliver(cid, message)]

    # -- secondary monitors ----------------------------------------------------------------

    def _admit_secondary(self, cid: str, hello: dict[str, Any], now_ms: int) -> list[Action]:
        index = hello["monitor"]
        problem = self.monitors.problem_with(index)
        # A session whose primary is away (DISCONNECTED, waiting for its resume) keeps its
        # monitors: a window that lost its connection in the same blip joins again meanwhile.
        if self.state not in (SessionState.ACTIVE, SessionState.DISCONNECTED):
            problem = "no session window to extend: open the session first"
        if problem is not None:
            return self._reject(
                cid, CodeNumber.CONFIG_MISMATCH, {"field": "monitor", "problem": problem}
            )
        self.monitors.add(cid, index, size_of(hello.get("screen")))
        welcome = {
            "type": "welcome",
            "session_id": self.issued.session_id,
            "connection_id": cid,
            "resume": False,
            "state": SessionState.ACTIVE.value,
            "last_seq": self.out_seq,
        }
        attrs = {"client": clip(hello.get("client", "unknown")), "resume": False, "monitor": index}
        return [
            Log("connection.established", connection_id=cid, attrs=attrs),
            Send(cid, welcome),
            Send(cid, {"type": "started"}),
            *self._display_changed(now_ms, f"monitor {index} added"),
        ]

    def _receive_secondary(self, cid: str, data: str | bytes, now_ms: int) -> list[Action]:
        """A secondary window speaks only for its own monitor; it cannot end the session."""
        try:
            message = messages.decode_from_terminal(data)
            if message["type"] == "hello":
                raise messages.MessageError("hello after the handshake")
        except messages.MessageError as exc:
            return self._drop_secondary(cid, CodeNumber.RECEIVE_ERROR, now_ms, {"error": str(exc)})
        kind = message["type"]
        if kind == "ping":
            return [Send(cid, {"type": "pong", "id": message["id"]})]
        if kind == "display_ack":
            if self.monitors.acknowledged(cid, message["change_id"]):
                self.deadlines.cancel(f"display_change:{cid}")
            return []
        if kind in ("close", "disconnect"):
            return self._drop_secondary(cid, 1000, now_ms, {"reason": "monitor window closed"})
        if kind == "resize":
            size = (message["width"], message["height"])
            index = self.monitors.secondaries[cid]
            if self.monitors.resize(index, size):
                return self._display_changed(now_ms, f"monitor {index} resized")
            return []
        if kind in ("pong", "ack"):
            return []
        return [Deliver(cid, message)]

    def _forget_secondary(self, cid: str) -> None:
        self.monitors.remove(cid)
        self.deadlines.cancel(f"display_change:{cid}")

    def _drop_secondary(
        self, cid: str, code: int, now_ms: int, attrs: dict[str, Any]
    ) -> list[Action]:
        """Close one secondary window; the session and the other monitors go on."""
        index = self.monitors.secondaries[cid]
        self._forget_secondary(cid)
        self._closing.add(cid)
        reason = _name(code) if code != 1000 else "MONITOR_CLOSED"
        return [
            Log(
                "connection.closed",
                code=code if code != 1000 else None,
                connection_id=cid,
                attrs={**attrs, "monitor": index},
            ),
            Close(cid, code, reason),
            *self._display_changed(now_ms, f"monitor {index} removed"),
        ]

    def _display_changed(self, now_ms: int, reason: str) -> list[Action]:
        """A new layout: every secondary must acknowledge it in time (4028 otherwise)."""
        change_id = self.monitors.change()
        layout = self.monitors.layout(self.primary)
        regions = [[m.index, m.x, m.y, m.width, m.height] for m in layout]
        actions: list[Action] = [
            Log(
                "display.changed",
                attrs={"change_id": change_id, "reason": reason, "monitors": regions},
            ),
            Relayout(layout),
        ]
        deadline = now_ms + ms(self.settings.display_change_timeout)
        for cid in self.monitors.awaiting:
            actions.append(Send(cid, {"type": "display_change", "change_id": change_id}))
            self.deadlines.set(f"display_change:{cid}", deadline)
        return actions

    def _detach_primary(self) -> None:
        self.last_primary = self.primary
        self.primary = None
        self.deadlines.cancel("receive")
        self.deadlines.cancel("heartbeat")

    def _lose_connection(
        self,
        cid: str,
        code: int,
        now_ms: int,
        attrs: dict[str, Any],
        *,
        abort: bool = False,
        send_close: bool = True,
    ) -> list[Action]:
        """The server ends connection `cid` with `code`; the session waits for a resume."""
        self._detach_primary()
        actions: list[Action] = [
            Log("connection.closed", code=code, connection_id=cid, attrs=attrs)
        ]
        if send_close:
            self._closing.add(cid)
            actions.append(Close(cid, code, _name(code), abort=abort))
        return actions + self._become_disconnected(code, now_ms, attrs)

    def _become_disconnected(
        self, code: int | None, now_ms: int, attrs: dict[str, Any]
    ) -> list[Action]:
        if self.state is SessionState.STARTING:
            return [Log("session.disconnected", code=code, attrs=attrs)]
        self.state = SessionState.DISCONNECTED
        self.deadlines.set("idle", now_ms + ms(self.settings.idle_timeout))
        return [
            Log("session.disconnected", code=code, connection_id=self.last_primary, attrs=attrs)
        ]

    def _close_primary(self, code: int, attrs: dict[str, Any]) -> list[Action]:
        """The server closes the primary connection, if any, with `code`."""
        if self.primary is None:
            return []
        cid = self.primary
        self._detach_primary()
        self._closing.add(cid)
        return [
            Log("connection.closed", code=code, connection_id=cid, attrs=attrs),
            Close(cid, code, _name(code)),
        ]

    def _end(self, code: int, now_ms: int, attrs: dict[str, Any]) -> list[Action]:
        if self.ended:
            return []
        actions = self._close_primary(code, attrs)
        for secondary in list(self.monitors.secondaries):
            self._forget_secondary(secondary)
            self._closing.add(secondary)
            actions += [
                Log("connection.closed", code=code, connection_id=secondary, attrs=attrs),
                Close(secondary, code, _name(code)),
            ]
        self.state = SessionState.ENDED
        self.final_code = code
        self.deadlines.cancel_all_but("handshake:")
        duration = now_ms - self.started_ms if self.started_ms is not None else 0
        ended_attrs = {**attrs, "duration_ms": duration}
        return [*actions, Log("session.ended", code=code, attrs=ended_attrs), EndSession(code)]


def _name(code: int) -> str:
    row = codes.lookup(code)
    return row.name if row is not None else str(code)
