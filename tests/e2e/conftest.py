"""Fixtures for end-to-end tests: every process a test starts is ended at teardown, by PID."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import ARGS, CHROMIUM, Browser
from tests.e2e.harness import RawClient, ServerProcess, TerminalProcess
from tests.support.coturn import PASSWORD, USER, Coturn
from tests.support.faultproxy import ProxyProcess, start_proxy_process
from tests.support.redis_server import RedisServer
from tests.support.sandbox import shared_folder


class E2E:
    """Starts servers, proxies, terminals and raw clients under one folder; stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._servers: list[ServerProcess] = []
        self._proxies: list[ProxyProcess] = []
        self._terminals: list[TerminalProcess] = []
        self._raws: list[RawClient] = []
        self._stores: list[RedisServer] = []
        self._names = 0

    def server(
        self,
        launchpads: dict[str, dict[str, Any]] | None = None,
        account: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
    ) -> ServerProcess:
        """A server process; `server` overrides keys of its [server] table."""
        process = ServerProcess.start(
            self.root / f"server{len(self._servers)}",
            launchpads=launchpads,
            account=account,
            server=server,
        )
        self._servers.append(process)
        return process

    def proxy(self, target_port: int) -> ProxyProcess:
        proxy = start_proxy_process(target_port)
        self._proxies.append(proxy)
        return proxy

    def terminal(
        self,
        link: str,
        ws_url: str | None = None,
        name: str | None = None,
        stdin: bool = True,
        signaling_url: str | None = None,
        prefix: list[str] | None = None,
        extra: list[str] | None = None,
    ) -> TerminalProcess:
        """`extra`: more `openfrp connect` options (--screenshot FILE, say)."""
        self._names += 1
        log = self.root / f"{name or 'terminal'}-{self._names}.jsonl"
        terminal = TerminalProcess.start(
            link,
            log,
            ws_url=ws_url,
            stdin=stdin,
            signaling_url=signaling_url,
            prefix=prefix,
            extra=extra,
        )
        self._terminals.append(terminal)
        return terminal

    def connected(
        self,
        server: ServerProcess,
        ticket: dict[str, Any],
        proxy: ProxyProcess | None = None,
        name: str | None = None,
    ) -> TerminalProcess:
        """A terminal (through `proxy` if given) that has joined an active session."""
        ws_url = f"ws://127.0.0.1:{proxy.port}/frp7" if proxy is not None else None
        terminal = self.terminal(ticket["connect_url"], ws_url=ws_url, name=name)
        terminal.wait_line(rf"^connected to {ticket['session_id']} as c-")
        server.log.wait_event(event="session.started", session_id=ticket["session_id"])
        return terminal

    def redis(self) -> RedisServer:
        """A Redis registry, stopped after the servers: a server that stops without its
        registry waits to record its sessions' ends (3 s a server, in every such teardown)."""
        store = RedisServer.start(self.root / f"redis{len(self._stores)}")
        self._stores.append(store)
        return store

    def raw(self, url: str, max_queue: int | None = 16) -> RawClient:
        client = RawClient.open(url, max_queue=max_queue)
        self._raws.append(client)
        return client

    def close(self) -> None:
        for raw in self._raws:
            raw.close()
        for terminal in self._terminals:
            terminal.stop()
        for proxy in self._proxies:
            proxy.stop()
        for server in self._servers:
            server.stop()
            # A server the test killed never ended its sessions: remove the homes they left.
            for account in server.log.find(event="session.account"):
                shutil.rmtree(account["attrs"]["home"], ignore_errors=True)
        for store in self._stores:
            store.stop()


FRP8_PAD = {
    "frp": 8,
    "frp8_fallback": "none",  # each test sees the FRP8 code itself; fallback has its own tests
    "signaling_peer_timeout": 3.0,
    "negotiation_timeout": 4.0,
    "ice_failed_after": 5.0,
    "ice_disconnected_after": 1.5,
    "heartbeat_interval": 0.5,
    "receive_timeout": 1.0,
    "max_receive_timeouts": 3,
    "reconnect_attempts": 3,
    "reconnect_backoff_initial": 0.3,
    "reconnect_backoff_max": 1.0,
    "reconnect_window": 30.0,
    "idle_timeout": 60.0,
    "connect_timeout": 15.0,
}


def frp8_server(
    e2e: E2E, turn: Coturn, launchpad: dict[str, Any] | None = None, **server: Any
) -> ServerProcess:
    """A server whose launchpad "rtc" is FRP8 (FRP8_PAD unless `launchpad`), relay-only through
    `turn`; `server` overrides keys of its [server] table."""
    options = {
        "turn_url": f"turn:{turn.host}:{turn.port}?transport=udp",
        "turn_user": USER,
        "turn_password": PASSWORD,
        "ice_policy": "relay",
        "video_fps": 5,
        **server,
    }
    return e2e.server(launchpads={"rtc": launchpad or FRP8_PAD}, server=options)


@contextlib.contextmanager
def shared_e2e_env() -> Iterator[E2E]:
    """An E2E under a folder any user may traverse (0755): a root server's session app runs
    as a user of its own, which must reach what the test gives it there."""
    with shared_folder(0o755) as root:
        env = E2E(root)
        try:
            yield env
        finally:
            env.close()


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2E]:
    env = E2E(tmp_path)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def e2e_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    env = E2E(tmp_path_factory.mktemp("e2e"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield Browser(chromium.new_page())
        finally:
            chromium.close()
