"""The server's guards on file descriptors: how many it may open, what it says when they run
out, and how long a connection may take to send a request.

When every descriptor is taken, asyncio fails each accept and logs a traceback per failed
accept (thousands a second); the server says it once in ten seconds instead, as one event
and one line, and keeps serving what it has. A request head not finished within
`header_timeout` (the first of a connection, or the next on a kept-alive one) and a body not
finished within `body_timeout` of its head (Slowloris) close the connection, so slow sockets
cannot hold the descriptors; one client address holds at most `max_connections_per_address`
(a session's app on this host has its own count, apart from its loopback address's).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import h11
from h11._util import Sentinel
from uvicorn.protocols.http.h11_impl import H11Protocol

from openfrp.events import Event, EventLog
from openfrp.server.peers import Apps

REPORT_EVERY = 10.0  # seconds
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def raise_open_files(wanted: int) -> int:
    """Raise the soft descriptor limit toward `wanted` (never above the hard limit, never
    lower than it is); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class Burst:
    """At most `limit` events of one kind per `window` seconds: one that may be written
    learns how many were held back since the last one written."""

    def __init__(self, limit: int = 20, window: float = 10.0) -> None:
        self.limit, self.window = limit, window
        self._start = -window
        self._written = 0
        self._held = 0

    def allow(self) -> int | None:
        """How many were held back before this one, or None: hold this one back too."""
        now = time.monotonic()
        if now - self._start >= self.window:
            self._start, self._written = now, 0
        if self._written >= self.limit:
            self._held += 1
            return None
        self._written += 1
        held, self._held = self._held, 0
        return held


class Throttled:
    """An event about a refused client, at most once per REPORT_EVERY seconds, with how many
    were refused since the last one."""

    def __init__(self, log: EventLog, host: str, name: str) -> None:
        self._log, self._host, self._name = log, host, name
        self._last: float | None = None
        self._count = 0

    def __call__(self, address: str, limit: float) -> None:
        self._count += 1
        now = time.monotonic()
        if self._last is not None and now - self._last < REPORT_EVERY:
            return
        self._last, count, self._count = now, self._count, 0
        attrs = {"address": address, "limit": limit, "refused": count}
        with contextlib.suppress(OSError):
            self._log.write(Event(self._name, host=self._host, severity="warning", attrs=attrs))


class ResourceAlarm:
    """A loop exception handler: out-of-descriptor errors become one event and one stderr
    line per REPORT_EVERY seconds, with how many happened; anything else goes on as usual."""

    def __init__(self, log: EventLog, host: str) -> None:
        self._log = log
        self._host = host
        self._last: float | None = None
        self._count = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in OUT_OF_RESOURCES):
            loop.default_exception_handler(context)
            return
        self._count += 1
        now = time.monotonic()
        if self._last is not None and now - self._last < REPORT_EVERY:
            return
        self._last, count, self._count = now, self._count, 0
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        text = (
            f"out of file descriptors ({error.strerror}, limit {limit}): new connections "
            "wait while the ones open go on"
        )
        print(f"openfrp serve: {text} ({count} failures)", file=sys.stderr, flush=True)
        try:
            self._log.write(
                Event(
                    "server.fd_exhausted",
                    host=self._host,
                    severity="error",
                    message=text,
                    attrs={"failures": count, "limit": limit, "error": error.strerror},
                )
            )
        except OSError:
            return  # the log may need a descriptor too: stderr has said it


class PerAddress:
    """The open connections of each client address; closed ones are forgotten as it goes. A
    session's app on this host counts apart ("127.0.0.1 uid 1234"): it would take the
    loopback address's connections from the operator's local clients (peers.py)."""

    def __init__(self, limit: int, alarm: Callable[[str, int], None], apps: Apps) -> None:
        self.limit = limit
        self._alarm = alarm
        self._apps = apps
        self._open: dict[str, set[asyncio.BaseTransport]] = {}

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        uid = self._apps.uid(peer, transport.get_extra_info("sockname"))
        if uid is not None:
            address = f"{address} uid {uid}"
        open_ = {t for t in self._open.get(address, ()) if not t.is_closing()}
        if len(open_) >= self.limit:
            self._open[address] = open_
            self._alarm(address, self.limit)
            return False
        open_.add(transport)
        self._open[address] = open_
        return True


def guarded_h11(
    header_timeout: float,
    body_timeout: float,
    per_address: PerAddress,
    timed_out: Callable[[str, str, float], None],
) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection past the per-address limit at once, and
    one whose request head or body is late (`timed_out(part, address, limit)` is told)."""
    limits = {h11.IDLE: ("head", header_timeout), h11.SEND_BODY: ("body", body_timeout)}

    class GuardedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _watched: type[Sentinel] | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not per_address.admit(transport):
                transport.abort()
                return
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def _watch(self) -> None:
            """Time what the client owes now: a request head, a body, or nothing."""
            state = self.conn.their_state
            if state is self._watched or self.transport.is_closing():
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._watched = state
            if state in limits:
                part, limit = limits[state]
                self._timer = self.loop.call_later(limit, self._late, state, part, limit)

        def _late(self, state: type[Sentinel], part: str, limit: float) -> None:
            # A WebSocket upgrade hands the socket to another protocol: leave it alone.
            if self.conn.their_state is not state or self.transport.get_protocol() is not self:
                return
            peer = self.transport.get_extra_info("peername")
            timed_out(part, str(peer[0]) if isinstance(peer, tuple) and peer else "?", limit)
            self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

    return GuardedH11
