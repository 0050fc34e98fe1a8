"""Prometheus metrics, counted from what the server writes to its event log.

Every session, connection, code and stream report already passes through the event log, so
the counters watch it rather than every place that logs: one source, no drift between what
the log says and what the metrics say. Gauges of live state (sessions by state, connections)
are read from the server's memory at scrape time, so they can never leak.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from openfrp.events import Event, EventLog
from openfrp.protocol.server_session import SessionState
from openfrp.server.registry import Registry

log = logging.getLogger("openfrp.server")

CONNECT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
FPS_BUCKETS = (1, 2, 5, 10, 15, 20, 25, 30, 45, 60)
MBIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
PENDING_LIMIT = 4096  # connections opened and not yet established that a metric waits for


class Metrics:
    """The server's metrics in a registry of their own (no process-wide global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.codes = Counter(
            "openfrp_codes",
            "Events carrying a code, by code, side (server, terminal, signaling) and event",
            ["code", "side", "event"],
            registry=r,
        )
        self.sessions_launched = Counter(
            "openfrp_sessions_launched", "Sessions launched on this host", registry=r
        )
        self.connections_opened = Counter(
            "openfrp_connections_opened", "Terminal connections opened", ["frp"], registry=r
        )
        self.reconnects = Counter(
            "openfrp_reconnect_attempts",
            "Reconnect attempts the terminals reported (shipped terminal events)",
            registry=r,
        )
        self.resumes = Counter(
            "openfrp_resumes", "Disconnected sessions a terminal resumed", registry=r
        )
        self.time_to_connect = Histogram(
            "openfrp_time_to_connect_seconds",
            "From a connection opened to its session established (the server's view)",
            buckets=CONNECT_BUCKETS,
            registry=r,
        )
        self.fps = Histogram(
            "openfrp_stream_fps",
            "Frames per second of the display stream, per stats period",
            buckets=FPS_BUCKETS,
            registry=r,
        )
        self.bitrate = Histogram(
            "openfrp_stream_mbit_per_second",
            "Mbit/s of the display stream, per stats period",
            buckets=MBIT_BUCKETS,
            registry=r,
        )
        self.signaling_peers = Gauge(
            "openfrp_signaling_peers", "Server peers registered with this signaling hub", registry=r
        )
        self.peer_registered = Gauge(
            "openfrp_frp8_peer_registered",
            "1 while this host's FRP8 server peer is registered with its signaling hub",
            registry=r,
        )
        self.registry_errors = Counter(
            "openfrp_registry_errors", "Registry calls that failed", ["op"], registry=r
        )
        self.log_write_errors = Counter(
            "openfrp_event_log_write_errors", "Event log writes that failed", registry=r
        )
        self._opened: dict[str, float] = {}
        self._peers: set[str] = set()
        self.peer_up = False
        self.registry_failing: str | None = None  # the last registry error, None once it works
        self.log_failing: str | None = None  # the last event-log write error, None once it works

    def watch(self, live: Callable[[], Mapping[str, Any]]) -> None:
        """Read live sessions (session id -> runtime) from the server's memory at scrape."""
        self.registry.register(_LiveState(live))

    def observe(self, event: Event) -> None:
        """Count one event the server wrote."""
        name, attrs = event.event, event.attrs
        if event.code is not None:
            self.codes.labels(str(event.code), event.source, name).inc()
        if event.source == "signaling":
            self._signaling(name, attrs)
            return
        if event.source == "terminal":
            if name == "reconnect.attempt":
                self.reconnects.inc()
            return
        cid = event.connection_id
        if name == "session.created":
            self.sessions_launched.inc()
        elif name == "connection.opened" and cid:
            self.connections_opened.labels(str(event.frp or "")).inc()
            if len(self._opened) < PENDING_LIMIT:
                self._opened[cid] = time.monotonic()
        elif name == "connection.established" and cid in self._opened:
            self.time_to_connect.observe(time.monotonic() - self._opened.pop(cid))
        elif name in ("connection.closed", "connection.rejected") and cid:
            self._opened.pop(cid, None)
        elif name == "session.resumed":
            self.resumes.inc()
        elif name == "stats":
            self._stats(attrs)
        elif name in ("signaling.registered", "signaling.unregistered"):
            self.peer_up = name == "signaling.registered"
            self.peer_registered.set(int(self.peer_up))

    def _signaling(self, name: str, attrs: dict[str, Any]) -> None:
        host = str(attrs.get("host", ""))
        if name == "signaling.registered":
            self._peers.add(host)
        elif name == "signaling.unregistered":
            self._peers.discard(host)
        self.signaling_peers.set(len(self._peers))

    def _stats(self, attrs: dict[str, Any]) -> None:
        for key, histogram in (("fps", self.fps), ("mbit_s", self.bitrate)):
            value = attrs.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                histogram.observe(value)

    def registry_failed(self, op: str, exc: BaseException) -> None:
        self.registry_errors.labels(op).inc()
        reason = f"{type(exc).__name__}: {exc}"
        if self.registry_failing is None:
            log.error("registry %s failed: %s", op, reason)
        self.registry_failing = reason

    def registry_answered(self) -> None:
        if self.registry_failing is not None:
            log.warning("registry answers again")
        self.registry_failing = None


class _LiveState(Collector):
    def __init__(self, live: Callable[[], Mapping[str, Any]]) -> None:
        self._live = live

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtimes = list(self._live().values())
        sessions = GaugeMetricFamily(
            "openfrp_sessions", "Sessions in this server's memory, by state", labels=["state"]
        )
        for state in SessionState:
            count = sum(1 for r in runtimes if r.machine.state is state)
            sessions.add_metric([state.value], count)
        yield sessions
        yield GaugeMetricFamily(
            "openfrp_connections",
            "Terminal connections open (primary and secondary monitors)",
            value=sum(len(r.links) for r in runtimes),
        )


class ObservedEventLog(EventLog):
    """The event log, counted: each written event feeds the metrics, and a write that fails
    (disk full, file gone) is counted and told to the operator; the caller goes on."""

    def __init__(
        self, path: str | os.PathLike[str], metrics: Metrics, max_bytes: int = 0, keep: int = 5
    ) -> None:
        super().__init__(path, max_bytes, keep)
        self._metrics = metrics

    def write(self, event: Event) -> None:
        super().write(event)  # a failed write is counted there and never raised
        if self.failing is not None:
            self._metrics.log_write_errors.inc()
            if self._metrics.log_failing is None:
                log.error("event log %s: write failed: %s", self.path, self.failing)
            self._metrics.log_failing = self.failing
            return
        if self._metrics.log_failing is not None:
            log.warning("event log %s: writes work again", self.path)
            self._metrics.log_failing = None
        self._metrics.observe(event)


class _CountedRegistry:
    """A registry whose failed calls are counted and told to the operator once per outage."""

    def __init__(self, inner: Registry, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(value):
            return value
        metrics = self._metrics

        @functools.wraps(value)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await value(*args, **kwargs)
            except Exception as exc:
                metrics.registry_failed(name, exc)
                raise
            metrics.registry_answered()
            return result

        return counted


def counted_registry(inner: Registry, metrics: Metrics) -> Registry:
    return cast(Registry, _CountedRegistry(inner, metrics))
