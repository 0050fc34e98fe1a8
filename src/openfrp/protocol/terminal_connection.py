"""The terminal side: connect, keep alive, reconnect with bounded backoff, resume.

`idle -> connecting -> established -> (lost -> waiting -> connecting)* -> done(code)`, and
`done(4106) -> connecting` when the person asks to resume a session the server did not end.
Every code the person should see comes out as a `Show` action; every code goes to the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from openfrp import PROTOCOL_VERSION, codes
from openfrp.codes import CodeNumber
from openfrp.protocol import messages
from openfrp.protocol.actions import Log
from openfrp.protocol.timers import Deadlines, ms
from openfrp.settings import SessionSettings


@dataclass(frozen=True)
class Connect:
    """Open a new transport to the server; `attempt` is 0 for the first connection, `frp` says
    which transport (7 WebSocket, 8 WebRTC)."""

    attempt: int
    frp: int = 7


@dataclass(frozen=True)
class Transmit:
    message: dict[str, Any]


@dataclass(frozen=True)
class Hangup:
    """Close the current transport; `abort` drops it without a close handshake."""

    code: int
    reason: str
    abort: bool = False


@dataclass(frozen=True)
class Show:
    """Tell the person in the session: a pop-up with the code's message."""

    code: int
    text: str
    level: str


@dataclass(frozen=True)
class Receive:
    """A reliable message for the application, in order and exactly once."""

    seq: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """The terminal is done; `code` is the last code it saw (None after a plain disconnect)."""

    code: int | None


@dataclass(frozen=True)
class ShipEvents:
    """The server is reachable again: send the terminal's unshipped events."""


TerminalAction = Connect | Transmit | Hangup | Show | Receive | Finished | ShipEvents | Log


class TerminalState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    ESTABLISHED = "established"
    WAITING = "waiting"
    CLOSING = "closing"
    DONE = "done"


# Refusals of a resume that do not end the session: it goes on elsewhere (4006), or waits for
# a terminal with the right details (4002: a revoked token, the wrong host).
SESSION_GOES_ON = (CodeNumber.CONFIG_MISMATCH, CodeNumber.ALREADY_IN_SESSION)


def show(code: int, refusal: int | None = None, unreachable: bool = False) -> Show:
    """The code's pop-up; `refusal`: the server's code that ended the attempts (4106);
    `unreachable`: every attempt found nothing listening."""
    row = codes.get(code)
    level = "info" if row.kind is codes.Kind.INFO else "error"
    text = row.message_for(refusal, unreachable)
    return Show(code, f"[{row.number} {row.name}] {text}", level)


def show_warning(code: int, seconds_left: int) -> Show:
    """The advance notice of a code (4008): when it will happen, not that it has."""
    row = codes.get(code)
    text = row.warning_text(seconds_left) if row.warning else row.message
    return Show(code, f"[{row.number} {row.name}] {text}", "warning")


@dataclass
class SessionTicket:
    """What the launch API handed out: everything the terminal presents in `hello`."""

    session_id: str
    token: str
    config: dict[str, Any]
    config_digest: str
    client: str = "cli"
    monitor: int = 0  # 1-3: this terminal shows a secondary monitor of the session


class TerminalConnection:
    def __init__(
        self, ticket: SessionTicket, settings: SessionSettings, version: int = PROTOCOL_VERSION
    ) -> None:
        self.ticket = ticket
        self.settings = settings
        self.version = version
        self.state = TerminalState.IDLE
        self.deadlines = Deadlines()
        self.connection_id: str | None = None
        self.previous_connection_id: str | None = None
        self.last_seq = 0
        self.attempt = 0
        self.lost_at: int | None = None
        self.started_at = 0
        self.attempt_started_at = 0
        self.final_code: int | None = None
        self.refusal: int | None = None  # the server's code that turned a resume away
        self.unreachable = False  # gave up with every attempt refused by the TCP connect
        self.round = 1  # rounds of reconnect attempts: the person may ask for another
        self._only_refused = True  # every attempt of this round found nothing listening
        self._last_error: str | None = None
        self._ping_id = 0
        # A secondary monitor's region comes as frames of its own: it always speaks FRP7.
        self._use_transport(8 if ticket.config.get("frp") == 8 and not ticket.monitor else 7)

    def _use_transport(self, frp: int) -> None:
        """FRP8 watches its path with a data-channel heartbeat quick enough for 4108 within
        ice_disconnected_after; FRP7 relies on the server's heartbeats and keepalive_timeout."""
        self.frp = frp
        s = self.settings
        if frp == 8:
            self.keepalive_ms = ms(s.ice_disconnected_after)
            self.heartbeat_ms = min(ms(s.heartbeat_interval), self.keepalive_ms // 3)
            self.lost_code, self.lost_event = CodeNumber.ICE_DISCONNECTED, "ice.disconnected"
        else:
            self.keepalive_ms = ms(s.keepalive_timeout)
            self.heartbeat_ms = ms(s.heartbeat_interval)
            self.lost_code, self.lost_event = CodeNumber.CONNECTION_SEVERED, "connection.lost"

    @property
    def frp8(self) -> bool:
        return self.frp == 8

    @property
    def may_resume(self) -> bool:
        """Gave up (4106) without the server saying the session ended: it may still wait for
        this terminal (until idle_timeout), so the person is offered another round."""
        return self.final_code == CodeNumber.RECONNECT_FAILED and (
            self.refusal is None or self.refusal == CodeNumber.ALREADY_IN_SESSION
        )

    def next_deadline(self) -> int | None:
        return self.deadlines.next_deadline()

    # -- inputs ----------------------------------------------------------------------------

    def start(self, now_ms: int) -> list[TerminalAction]:
        self.started_at = now_ms
        self.deadlines.set("connect_window", now_ms + ms(self.settings.connect_timeout))
        return self._connect(now_ms)

    def transport_opened(self, now_ms: int) -> list[TerminalAction]:
        if self.state is not TerminalState.CONNECTING:
            return []
        hello: dict[str, Any] = {
            "type": "hello",
            "version": self.version,
            "session_id": self.ticket.session_id,
            "token": self.ticket.token,
            "config": self.ticket.config,
            "config_digest": self.ticket.config_digest,
            "client": self.ticket.client,
            "resume": self.lost_at is not None,
            "last_seq": self.last_seq,
        }
        if self.connection_id is not None:
            hello["previous_connection_id"] = self.connection_id
        if self.ticket.monitor:
            hello["monitor"] = self.ticket.monitor
        return [Transmit(hello)]

    def transport_failed(
        self, error: str, now_ms: int, refused: bool = False
    ) -> list[TerminalAction]:
        """The transport could not be opened (refused, unreachable, handshake error);
        `refused`: nothing listened there (TCP refused), so the server, not the path, is down."""
        if self.state is not TerminalState.CONNECTING:
            return []
        return self._attempt_failed(now_ms, {"error": error}, refused)

    def receive(self, data: str | bytes, now_ms: int) -> list[TerminalAction]:
        if self.state not in (
            TerminalState.CONNECTING,
            TerminalState.ESTABLISHED,
            TerminalState.CLOSING,
        ):
            return []
        self.deadlines.set("keepalive", now_ms + self.keepalive_ms)
        if isinstance(data, bytes):
            return []
        try:
            message = messages.decode_from_server(data)
        except messages.MessageError as exc:
            return [Log("message.invalid", severity="warning", attrs={"error": str(exc)})]
        return self._on_message(message, now_ms)

    def transport_closed(self, code: int | None, reason: str, now_ms: int) -> list[TerminalAction]:
        """The transport is gone; `code` is the server's close code, None without one."""
        if self.state in (TerminalState.DONE, TerminalState.WAITING, TerminalState.IDLE):
            return []
        self.deadlines.cancel("keepalive")
        self.deadlines.cancel("heartbeat")
        self.deadlines.cancel("attempt")
        attrs = {"close_code": code, "close_reason": reason}
        if self.state is TerminalState.CLOSING:
            final = code if code not in (None, 1000) else None
            log = Log(
                "connection.closed", code=final, connection_id=self.connection_id, attrs=attrs
            )
            return [log, *self._finish(final, attrs, shown=code)]
        row = codes.lookup(code) if code is not None else None
        if row is not None and (not row.reconnect or reason.endswith(codes.ENDED_SUFFIX)):
            log = Log("connection.closed", code=code, connection_id=self.connection_id, attrs=attrs)
            if self.lost_at is not None:
                self.refusal = code
                refused = self._give_up(now_ms, {"refused_code": code, "refused_reason": reason})
                return [log, show(row.number), *refused]
            return [log, *self._finish(code, attrs, shown=code)]
        if self.state is TerminalState.CONNECTING:
            return self._attempt_failed(now_ms, attrs)
        if row is not None:
            log = Log("connection.closed", code=code, connection_id=self.connection_id, attrs=attrs)
            return [log, show(row.number), *self._lost(now_ms, attrs, log_lost=False)]
        return self._lost(now_ms, attrs)

    def setup_failed(
        self, code: int, event: str, attrs: dict[str, Any], now_ms: int
    ) -> list[TerminalAction]:
        """An FRP8 attempt failed before its channel opened (4107, 5006-5008, or a server code
        sent on signaling). With `frp8_fallback = "frp7"` the session goes on over FRP7 at
        once, for good. Otherwise the first connection ends with that code, since it names the
        cause better than a later 4101 would; a reconnect attempt counts as one failed attempt."""
        if self.state is not TerminalState.CONNECTING:
            return []
        row = codes.lookup(code)
        actions: list[TerminalAction] = [
            Hangup(code if 4000 <= code <= 4999 else 1000, row.name if row else "", abort=True),
            Log(event, code=code, severity="error", attrs=attrs),
        ]
        if self.frp8 and self.settings.frp8_fallback == "frp7" and row is not None:
            self._use_transport(7)
            fallback = Log("transport.fallback", code=code, attrs={"from_frp": 8, "to_frp": 7})
            return [*actions, fallback, show(code), *self._connect(now_ms)]
        if self.lost_at is None:
            return actions + self._finish(code, attrs, shown=code)
        return actions + self._attempt_failed(now_ms, {"setup_code": code, **attrs})

    def close_session(self, now_ms: int) -> list[TerminalAction]:
        """Gear menu "Close Session": ask the server to end the session (4000)."""
        return self._leave({"type": "close"}, now_ms)

    def disconnect(self, now_ms: int) -> list[TerminalAction]:
        """Leave but keep the session for a later resume."""
        return self._leave({"type": "disconnect"}, now_ms)

    def resume(self, now_ms: int) -> list[TerminalAction]:
        """The person asks again after a 4106 the server did not confirm as the session's end:
        a new bounded round of resume attempts on the same connection chain."""
        if self.state is not TerminalState.DONE or not self.may_resume:
            return []
        self.final_code = self.refusal = None
        self.unreachable = False
        self.round += 1
        self._new_round(now_ms)
        return self._retry(now_ms)

    def tick(self, now_ms: int) -> list[TerminalAction]:
        actions: list[TerminalAction] = []
        for name in self.deadlines.pop_due(now_ms):
            if self.state is TerminalState.DONE:
                break
            actions += self._fire(name, now_ms)
        return actions

    # -- internals -------------------------------------------------------------------------

    def _fire(self, name: str, now_ms: int) -> list[TerminalAction]:
        if name == "connect_window":
            attrs = {"connect_timeout_s": self.settings.connect_timeout}
            return [
                Hangup(CodeNumber.CONNECT_TIMEOUT, "CONNECT_TIMEOUT", abort=True),
                Log("connect.failed", code=CodeNumber.CONNECT_TIMEOUT, attrs=attrs),
                *self._finish(CodeNumber.CONNECT_TIMEOUT, attrs, shown=CodeNumber.CONNECT_TIMEOUT),
            ]
        if name == "attempt":
            return [
                Hangup(CodeNumber.CONNECT_TIMEOUT, "CONNECT_TIMEOUT", abort=True),
                *self._attempt_failed(now_ms, {"error": "no welcome in connect_timeout"}),
            ]
        if name == "retry":
            return self._retry(now_ms)
        if name == "keepalive" and self.state is TerminalState.ESTABLISHED:
            # Only a live session is kept alive: while connecting the attempt/connect timers
            # rule, and while closing the closing grace does (no reconnect after Close).
            attrs = {"keepalive_timeout_s": self.keepalive_ms / 1000}
            row = codes.get(self.lost_code)
            return [Hangup(row.number, row.name, abort=True), *self._lost(now_ms, attrs)]
        if name == "heartbeat" and self.state is TerminalState.ESTABLISHED:
            self._ping_id += 1
            self.deadlines.set("heartbeat", now_ms + self.heartbeat_ms)
            return [Transmit({"type": "ping", "id": self._ping_id})]
        if name == "closing":
            return [
                Hangup(1000, "CLOSING", abort=True),
                *self._finish(None, {"reason": "server did not confirm"}, shown=None),
            ]
        return []

    def _connect(self, now_ms: int) -> list[TerminalAction]:
        self.state = TerminalState.CONNECTING
        self.attempt_started_at = now_ms
        if self.lost_at is not None:
            self.deadlines.set("attempt", now_ms + ms(self.settings.connect_timeout))
        return [
            Log("connect.attempt", attrs={"attempt": self.attempt}),
            Connect(self.attempt, self.frp),
        ]

    def _on_message(self, message: dict[str, Any], now_ms: int) -> list[TerminalAction]:
        kind = message["type"]
        if kind == "welcome":
            return self._welcomed(message, now_ms)
        if kind == "close":
            # FRP8 carries the server's code as a message; a refused hello/resume sends it
            # before any welcome, so it counts in every state, like a close code.
            return self.transport_closed(message["code"], message.get("reason", ""), now_ms)
        if self.state is TerminalState.CONNECTING:
            return [
                Log(
                    "message.invalid", severity="warning", attrs={"error": f"{kind} before welcome"}
                )
            ]
        if kind == "ping":
            return [Transmit({"type": "pong", "id": message["id"]})]
        if kind == "msg":
            seq = message["seq"]
            if seq <= self.last_seq:
                return [Transmit({"type": "ack", "seq": self.last_seq})]
            self.last_seq = seq
            return [Receive(seq, message["body"]), Transmit({"type": "ack", "seq": seq})]
        if kind == "display_change":
            return [Transmit({"type": "display_ack", "change_id": message["change_id"]})]
        if kind == "warning" and codes.lookup(message["code"]) is not None:
            attrs = {"seconds_left": message["seconds_left"]}
            return [
                Log("session.warning", code=message["code"], severity="warning", attrs=attrs),
                show_warning(message["code"], message["seconds_left"]),
            ]
        return []

    def _welcomed(self, message: dict[str, Any], now_ms: int) -> list[TerminalAction]:
        if self.state is not TerminalState.CONNECTING:
            return []
        self.deadlines.cancel("connect_window")
        self.deadlines.cancel("attempt")
        self.previous_connection_id = self.connection_id
        self.connection_id = message["connection_id"]
        self.state = TerminalState.ESTABLISHED
        self.deadlines.set("heartbeat", now_ms + self.heartbeat_ms)
        attrs = {
            "client": self.ticket.client,
            "resume": message["resume"],
            "time_to_connect_ms": now_ms - self.attempt_started_at,
        }
        actions: list[TerminalAction] = [
            Log(
                "connection.established",
                connection_id=self.connection_id,
                previous_connection_id=self.previous_connection_id,
                attrs=attrs,
            ),
        ]
        if self.lost_at is not None:
            actions.append(
                Log(
                    "reconnect.succeeded",
                    connection_id=self.connection_id,
                    previous_connection_id=self.previous_connection_id,
                    attrs={
                        "attempts": self.attempt,
                        "recovery_ms": now_ms - self.lost_at,
                        "resumed": message["resume"],
                    },
                )
            )
            self.lost_at = None
            self.attempt = 0
            self.round = 1  # a later loss starts its own rounds
        return [*actions, ShipEvents()]

    def _lost(
        self, now_ms: int, attrs: dict[str, Any], log_lost: bool = True
    ) -> list[TerminalAction]:
        actions: list[TerminalAction] = []
        if log_lost:
            actions += [
                Log(
                    self.lost_event,
                    code=self.lost_code,
                    connection_id=self.connection_id,
                    attrs=attrs,
                ),
                show(self.lost_code),
            ]
        self._new_round(now_ms)
        if self.settings.reconnect_attempts == 0:
            return actions + self._give_up(now_ms, {"reason": "reconnect disabled"})
        return actions + self._schedule_retry(now_ms)

    def _new_round(self, now_ms: int) -> None:
        self.lost_at = now_ms
        self.attempt = 0
        self._only_refused = True
        self._last_error = None

    def _schedule_retry(self, now_ms: int) -> list[TerminalAction]:
        s = self.settings
        delay = min(ms(s.reconnect_backoff_initial) * 2**self.attempt, ms(s.reconnect_backoff_max))
        assert self.lost_at is not None
        if now_ms + delay - self.lost_at > ms(s.reconnect_window):
            return self._give_up(
                now_ms, {"reason": "reconnect_window exhausted", "attempts": self.attempt}
            )
        self.state = TerminalState.WAITING
        self.deadlines.set("retry", now_ms + delay)
        return []

    def _retry(self, now_ms: int) -> list[TerminalAction]:
        if self.lost_at is None:
            return self._connect(now_ms)
        self.attempt += 1
        delay_ms = now_ms - (self.lost_at or now_ms)
        attrs = {"attempt": self.attempt, "since_lost_ms": delay_ms}
        if self.round > 1:
            attrs["round"] = self.round
        actions: list[TerminalAction] = [
            Log(
                "reconnect.attempt",
                code=CodeNumber.RECONNECTING,
                connection_id=self.connection_id,
                attrs=attrs,
            ),
            show(CodeNumber.RECONNECTING),
        ]
        return actions + self._connect(now_ms)

    def _attempt_failed(
        self, now_ms: int, attrs: dict[str, Any], refused: bool = False
    ) -> list[TerminalAction]:
        self.deadlines.cancel("attempt")
        self._only_refused = self._only_refused and refused
        error = attrs.get("error")
        self._last_error = str(error) if error is not None else self._last_error
        if self.lost_at is None:
            self.state = TerminalState.WAITING
            self.deadlines.set("retry", now_ms + ms(self.settings.reconnect_backoff_initial))
            return [Log("connect.retry", severity="warning", attrs=attrs)]
        if self.attempt >= self.settings.reconnect_attempts:
            return self._give_up(
                now_ms,
                {"reason": "reconnect_attempts exhausted", "attempts": self.attempt, **attrs},
            )
        return self._schedule_retry(now_ms)

    def _give_up(self, now_ms: int, attrs: dict[str, Any]) -> list[TerminalAction]:
        """4106. Without a refusal it says whether every attempt was refused by the TCP
        connect (`all_refused`: nothing listens, the server is down, not the network)."""
        since = now_ms - self.lost_at if self.lost_at is not None else 0
        if self.refusal is None:
            self.unreachable = self.attempt > 0 and self._only_refused
            attrs = {**attrs, "all_refused": self.unreachable, "last_error": self._last_error}
        row = codes.get(CodeNumber.RECONNECT_FAILED)
        log = Log(
            "reconnect.gave_up",
            code=CodeNumber.RECONNECT_FAILED,
            message=row.message_for(self.refusal, self.unreachable),
            connection_id=self.connection_id,
            attrs={**attrs, "since_lost_ms": since},
        )
        return [
            log,
            *self._finish(CodeNumber.RECONNECT_FAILED, attrs, shown=CodeNumber.RECONNECT_FAILED),
        ]

    def _leave(self, message: dict[str, Any], now_ms: int) -> list[TerminalAction]:
        if self.state in (TerminalState.DONE, TerminalState.CLOSING):
            # Finished, or a close or disconnect is on its way: that one stands (a script's
            # end after its `close` would otherwise hang up before the close went out).
            return []
        if self.state is not TerminalState.ESTABLISHED:
            return [Hangup(1000, "LEFT", abort=True), *self._finish(None, {}, shown=None)]
        self.state = TerminalState.CLOSING
        self.deadlines.set("closing", now_ms + 5000)
        return [Transmit(message)]

    def _finish(
        self, code: int | None, attrs: dict[str, Any], shown: int | None
    ) -> list[TerminalAction]:
        self.state = TerminalState.DONE
        self.final_code = code
        self.deadlines.clear()
        actions: list[TerminalAction] = []
        if shown is not None and codes.lookup(shown) is not None:
            actions.append(show(shown, self.refusal, self.unreachable))
        return [*actions, Finished(code)]
