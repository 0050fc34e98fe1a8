"""Fake clock, drivers and an in-memory network for the sans-I/O protocol core.

Time is integer milliseconds. A driver advances the clock to each `next_deadline()` in turn,
ticks the machine there and records every action with the time it was produced, so a test can
assert both *what* happened and *exactly when*.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from openfrp import PROTOCOL_VERSION
from openfrp.protocol import messages
from openfrp.protocol.actions import Close, EndSession, Log, Send, StartSession
from openfrp.protocol.handshake import Issued, digest, sign_token
from openfrp.protocol.server_session import ServerSession
from openfrp.protocol.terminal_connection import (
    Connect,
    Hangup,
    SessionTicket,
    TerminalAction,
    TerminalConnection,
    Transmit,
)
from openfrp.settings import SessionSettings

SECRET = b"test-secret-0123456789"
SESSION_ID = "sess-1"
USER = "alice@example.com"
CONFIG: dict[str, Any] = {"launchpad": "desktop", "width": 1280, "height": 720, "frp": 7}

# Short, distinct timers so every rule can be hit at its exact millisecond.
FAST = replace(
    SessionSettings(),
    idle_timeout=60.0,
    max_session_duration=600.0,
    warn_before=60.0,
    receive_timeout=1.0,
    max_receive_timeouts=3,
    heartbeat_interval=0.5,
    handshake_timeout=2.0,
    send_buffer_limit=4096,
    video_failure_limit=3,
    connect_timeout=5.0,
    keepalive_timeout=2.5,
    reconnect_attempts=5,
    reconnect_window=30.0,
    reconnect_backoff_initial=0.5,
    reconnect_backoff_max=4.0,
)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


# -- identities ------------------------------------------------------------------------------


def issued(config: dict[str, Any] | None = None) -> Issued:
    config = dict(CONFIG if config is None else config)
    return Issued(SESSION_ID, USER, config, digest(config))


def token(
    session_id: str = SESSION_ID, user: str = USER, secret: bytes = SECRET, **extra: Any
) -> str:
    return sign_token(secret, {"session_id": session_id, "user": user, **extra})


def hello(**overrides: Any) -> dict[str, Any]:
    """A correct `hello` for the issued session; keyword arguments replace or add fields."""
    message: dict[str, Any] = {
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "session_id": SESSION_ID,
        "token": token(),
        "config": dict(CONFIG),
        "config_digest": digest(CONFIG),
        "client": "test",
    }
    message.update(overrides)
    return message


def ticket() -> SessionTicket:
    return SessionTicket(SESSION_ID, token(), dict(CONFIG), digest(CONFIG), client="test")


def wire(message: dict[str, Any]) -> str:
    return messages.encode(message)


# -- clock and drivers -----------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def advance(self, delta_ms: int) -> int:
        assert delta_ms >= 0
        self.now += delta_ms
        return self.now

    def set(self, at_ms: int) -> int:
        assert at_ms >= self.now, f"time cannot go back ({at_ms} < {self.now})"
        self.now = at_ms
        return self.now


A = TypeVar("A")


class Machine(Protocol[A]):
    def next_deadline(self) -> int | None: ...

    def tick(self, now_ms: int) -> list[A]: ...


class Driver(Generic[A]):
    """Runs one state machine against the fake clock and records (time, action) pairs."""

    def __init__(self, machine: Machine[A], clock: FakeClock) -> None:
        self.machine = machine
        self.clock = clock
        self.record: list[tuple[int, A]] = []

    @property
    def now(self) -> int:
        return self.clock.now

    def feed(self, actions: Iterable[A]) -> list[A]:
        """Record actions returned by a direct call made at the current time."""
        out = list(actions)
        self.record += [(self.clock.now, a) for a in out]
        return out

    def run_until(self, at_ms: int) -> list[A]:
        """Tick at every deadline up to and including `at_ms`; return what happened."""
        out: list[A] = []
        while True:
            deadline = self.machine.next_deadline()
            if deadline is None or deadline > at_ms:
                break
            self.clock.set(max(self.clock.now, deadline))
            out += self.feed(self.machine.tick(self.clock.now))
        self.clock.set(at_ms)
        return out

    def advance(self, delta_ms: int) -> list[A]:
        return self.run_until(self.clock.now + delta_ms)

    def since(self, at_ms: int) -> list[A]:
        return [a for t, a in self.record if t >= at_ms]

    def at(self, action: A) -> int:
        """The time an (equal) action was first recorded."""
        for t, a in self.record:
            if a == action:
                return t
        raise AssertionError(f"{action!r} never happened")


# -- action filters --------------------------------------------------------------------------


def logs(actions: Iterable[object], event: str | None = None) -> list[Log]:
    return [a for a in actions if isinstance(a, Log) and (event is None or a.event == event)]


def closes(actions: Iterable[object]) -> list[Close]:
    return [a for a in actions if isinstance(a, Close)]


def sends(actions: Iterable[object], kind: str | None = None, cid: str | None = None) -> list[Send]:
    return [
        a
        for a in actions
        if isinstance(a, Send)
        and (kind is None or a.message.get("type") == kind)
        and (cid is None or a.connection_id == cid)
    ]


def codes_of(actions: Iterable[object]) -> list[int]:
    """Every code carried by a Close, EndSession or coded Log, in order."""
    out: list[int] = []
    for a in actions:
        if isinstance(a, Close | EndSession | Log) and a.code is not None:
            out.append(a.code)
    return out


def of_type(actions: Iterable[object], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


# -- server helpers --------------------------------------------------------------------------


class ServerHarness(Driver[Any]):
    """A ServerSession with the usual moves (open, hello, start) in one call each."""

    machine: ServerSession

    def __init__(
        self,
        settings: SessionSettings = FAST,
        now: int = 0,
        config: dict[str, Any] | None = None,
    ) -> None:
        clock = FakeClock(now)
        super().__init__(ServerSession(issued(config), settings, SECRET, now), clock)

    @property
    def session(self) -> ServerSession:
        return self.machine

    def open(self, cid: str) -> list[Any]:
        return self.feed(self.session.connection_opened(cid, self.now, {"peer": "test"}))

    def send(self, cid: str, data: str | bytes | dict[str, Any]) -> list[Any]:
        raw = wire(data) if isinstance(data, dict) else data
        return self.feed(self.session.receive(cid, raw, self.now))

    def hello(self, cid: str, **overrides: Any) -> list[Any]:
        return self.send(cid, hello(**overrides))

    def join(self, cid: str, **overrides: Any) -> list[Any]:
        """Open `cid`, say hello, and complete the start if this is the first connection."""
        out = self.open(cid) + self.hello(cid, **overrides)
        if any(isinstance(a, StartSession) for a in out):
            out += self.start()
        return out

    def start(self) -> list[Any]:
        return self.feed(self.session.start_succeeded(self.now))

    def lose(self, cid: str, peer_code: int | None = None) -> list[Any]:
        return self.feed(self.session.connection_lost(cid, self.now, peer_code))

    def push(self, body: dict[str, Any]) -> list[Any]:
        return self.feed(self.session.push(body, self.now))


class TerminalHarness(Driver[TerminalAction]):
    machine: TerminalConnection

    def __init__(self, settings: SessionSettings = FAST, now: int = 0) -> None:
        super().__init__(TerminalConnection(ticket(), settings), FakeClock(now))

    @property
    def term(self) -> TerminalConnection:
        return self.machine

    def start(self) -> list[TerminalAction]:
        return self.feed(self.term.start(self.now))

    def opened(self) -> list[TerminalAction]:
        return self.feed(self.term.transport_opened(self.now))

    def failed(self, error: str = "refused") -> list[TerminalAction]:
        return self.feed(self.term.transport_failed(error, self.now))

    def closed(self, code: int | None, reason: str = "") -> list[TerminalAction]:
        return self.feed(self.term.transport_closed(code, reason, self.now))

    def server_says(self, data: str | bytes | dict[str, Any]) -> list[TerminalAction]:
        raw = wire(data) if isinstance(data, dict) else data
        return self.feed(self.term.receive(raw, self.now))

    def welcome(self, cid: str = "c1", resume: bool = False) -> list[TerminalAction]:
        return self.server_says(
            {
                "type": "welcome",
                "session_id": SESSION_ID,
                "connection_id": cid,
                "resume": resume,
                "state": "active",
                "last_seq": 0,
            }
        )

    def establish(self, cid: str = "c1") -> list[TerminalAction]:
        return self.start() + self.opened() + self.welcome(cid)


# -- in-memory network -----------------------------------------------------------------------


@dataclass
class Event:
    at: int
    side: str  # "server" or "terminal"
    action: object


class Network:
    """Wires a ServerSession and a TerminalConnection together through a fake network.

    Terminal `Transmit` becomes `server.receive`, server `Send` becomes `terminal.receive`,
    `Connect` opens a new connection (or fails at once while the path is cut). `cut = True`
    drops everything in both directions, close frames and connection attempts included: each
    side learns of the cut only through its own timers. Delivery is immediate and in order.
    """

    def __init__(self, settings: SessionSettings = FAST, auto_start: bool = True) -> None:
        self.clock = FakeClock(0)
        self.server = ServerSession(issued(), settings, SECRET, 0)
        self.terminal = TerminalConnection(ticket(), settings)
        self.auto_start = auto_start
        self.cut = False
        self.current: str | None = None  # the terminal's transport
        self.server_open: set[str] = set()  # the transports the server side still holds
        self._next_id = 0
        self.events: list[Event] = []
        self._queue: deque[Callable[[], None]] = deque()

    # -- what happened --

    @property
    def now(self) -> int:
        return self.clock.now

    def actions(self, side: str) -> list[object]:
        return [e.action for e in self.events if e.side == side]

    def when(self, side: str, predicate: Callable[[object], bool]) -> list[int]:
        return [e.at for e in self.events if e.side == side and predicate(e.action)]

    # -- driving --

    def start(self) -> None:
        self._terminal(self.terminal.start(self.now))
        self._pump()

    def call_server(self, fn: Callable[[int], list[Any]]) -> None:
        self._server(fn(self.now))
        self._pump()

    def call_terminal(self, fn: Callable[[int], list[TerminalAction]]) -> None:
        self._terminal(fn(self.now))
        self._pump()

    def run_until(self, at_ms: int) -> None:
        while True:
            self._pump()
            candidates = [
                d
                for d in (self.server.next_deadline(), self.terminal.next_deadline())
                if d is not None
            ]
            deadline = min(candidates, default=None)
            if deadline is None or deadline > at_ms:
                break
            self.clock.set(max(self.now, deadline))
            self._server(self.server.tick(self.now))
            self._terminal(self.terminal.tick(self.now))
        self.clock.set(at_ms)

    # -- plumbing --

    def _pump(self) -> None:
        while self._queue:
            self._queue.popleft()()

    def _server(self, actions: list[Any]) -> None:
        for action in actions:
            self.events.append(Event(self.now, "server", action))
            if isinstance(action, Send):
                self._queue.append(self._deliver_to_terminal(action))
            elif isinstance(action, Close):
                self._queue.append(self._server_closes(action))
            elif isinstance(action, StartSession) and self.auto_start:
                self._queue.append(lambda: self._server(self.server.start_succeeded(self.now)))

    def _terminal(self, actions: list[TerminalAction]) -> None:
        for action in actions:
            self.events.append(Event(self.now, "terminal", action))
            if isinstance(action, Connect):
                self._queue.append(self._connect)
            elif isinstance(action, Transmit):
                self._queue.append(self._deliver_to_server(action, self.current))
            elif isinstance(action, Hangup):
                self._queue.append(self._terminal_hangs_up(action, self.current))

    def _deliver_to_terminal(self, send: Send) -> Callable[[], None]:
        def run() -> None:
            cid = send.connection_id
            if self.cut or cid != self.current or cid not in self.server_open:
                return
            self._terminal(self.terminal.receive(wire(send.message), self.now))

        return run

    def _deliver_to_server(self, transmit: Transmit, cid: str | None) -> Callable[[], None]:
        def run() -> None:
            if self.cut or cid is None or cid != self.current or cid not in self.server_open:
                return
            self._server(self.server.receive(cid, wire(transmit.message), self.now))

        return run

    def _connect(self) -> None:
        if self.cut:
            self._terminal(self.terminal.transport_failed("unreachable", self.now))
            return
        self._next_id += 1
        cid = f"c{self._next_id}"
        self.current = cid
        self.server_open.add(cid)
        self._server(self.server.connection_opened(cid, self.now, {}))
        self._terminal(self.terminal.transport_opened(self.now))

    def _server_closes(self, close: Close) -> Callable[[], None]:
        def run() -> None:
            cid = close.connection_id
            if cid not in self.server_open:
                return
            self.server_open.discard(cid)
            if cid == self.current:
                self.current = None
                if not self.cut:
                    self._terminal(
                        self.terminal.transport_closed(close.code, close.reason, self.now)
                    )
            # The I/O layer reports every transport it closed once it is gone.
            self._server(self.server.connection_lost(cid, self.now, None))

        return run

    def _terminal_hangs_up(self, hangup: Hangup, cid: str | None) -> Callable[[], None]:
        def run() -> None:
            if cid is None or cid != self.current:
                return
            self.current = None
            if self.cut or cid not in self.server_open:
                return  # the server never hears of it
            self.server_open.discard(cid)
            peer_code = None if hangup.abort else hangup.code
            self._server(self.server.connection_lost(cid, self.now, peer_code))

        return run
