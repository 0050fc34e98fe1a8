"""FRP8 over a direct UDP path, and a firewall that closes it.

The terminal runs in a network namespace of the test's own, joined to the server by a veth
pair: ICE pairs the two host addresses and the session's data channel runs over plain UDP (no
relay, no STUN/TURN servers at all). Then nft inside the namespace drops every UDP datagram:
the data-channel heartbeat goes silent (4108), each reconnect gets through signaling (TCP) but
not ICE (5006), and the terminal gives up (4106). The analyzer names the firewall.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from openfrp.events import parse_ts
from openfrp.settings import SessionSettings
from tests.e2e.conftest import E2E, FRP8_PAD
from tests.e2e.harness import diagnosis
from tests.e2e.test_frp8 import codes_of
from tests.support.netns import Namespace

NS_TOOLS = all(shutil.which(tool) for tool in ("ip", "nft"))
pytestmark = pytest.mark.skipif(not NS_TOOLS or os.geteuid() != 0, reason="needs root, ip, nft")

FIREWALLED_PAD = {**FRP8_PAD, "ice_failed_after": 2.0, "reconnect_attempts": 2}
# The shipped timers (the e2e account shortens them), FRP8 falling back to FRP7 as by default.
DEFAULTS = SessionSettings()
DEFAULT_PAD = {
    "frp": 8,
    "idle_timeout": 120.0,
    **{
        key: getattr(DEFAULTS, key)
        for key in (
            "frp8_fallback",
            "connect_timeout",
            "signaling_peer_timeout",
            "negotiation_timeout",
            "ice_failed_after",
            "ice_disconnected_after",
            "heartbeat_interval",
            "keepalive_timeout",
            "reconnect_backoff_initial",
            "reconnect_backoff_max",
            "reconnect_window",
            "reconnect_attempts",
        )
    },
}


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    with Namespace() as ns:
        yield ns


def test_udp_dropped_by_a_firewall_is_4108_then_5006_then_4106(
    e2e: E2E, namespace: Namespace
) -> None:
    server = e2e.server(
        launchpads={"rtc": FIREWALLED_PAD},
        server={"host": namespace.host_ip, "ice_policy": "all"},
    )
    ticket = server.launch("mallory", "rtc")
    sid = ticket["session_id"]
    assert ticket["config"]["frp8"]["ice_servers"] == []  # nothing but the two peers
    terminal = e2e.terminal(ticket["connect_url"], prefix=namespace.prefix)
    terminal.wait_line(rf"^connected to {sid} as c-", timeout=20)
    server.log.wait_event(event="session.started", session_id=sid)

    namespace.drop_udp()
    lost = terminal.log.wait_event(event="ice.disconnected", timeout=10)
    assert lost["code"] == 4108
    terminal.wait_line(r"^could not reconnect: 4106 RECONNECT_FAILED", timeout=40)
    assert codes_of(terminal.log, "reconnect.attempt") == [4103, 4103]
    assert codes_of(terminal.log, "ice.failed") == [5006, 5006]  # signaling got through
    gave_up = terminal.log.wait_event(event="reconnect.gave_up")
    assert gave_up["code"] == 4106 and gave_up["attrs"]["setup_code"] == 5006
    disconnected = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert disconnected["code"] in (4023, 4029)
    facts = diagnosis(sid, server.log, terminal.log)
    assert facts["category"] == "nat_traversal"
    assert {4108, 5006, 4106} <= set(facts["codes"])
    # The server's address goes away (its namespace's veth pair), then it is told to stop:
    # it stops at once. It waited 10 s for a closing handshake that could no longer come on
    # the registration of its FRP8 peer with its own hub, and was killed.
    namespace.delete()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(4) == 0


def _default_timer_session(e2e: E2E, namespace: Namespace, user: str) -> tuple[Any, Any, str]:
    server = e2e.server(
        launchpads={"rtc": DEFAULT_PAD},
        server={"host": namespace.host_ip, "ice_policy": "all"},
    )
    ticket = server.launch(user, "rtc")
    return server, ticket, ticket["session_id"]


def test_udp_blocked_from_the_start_falls_back_to_frp7_within_connect_timeout(
    e2e: E2E, namespace: Namespace
) -> None:
    """With the shipped timers ICE alone may take as long as connect_timeout: the FRP8 setup
    runs inside its own budget, so the person sees 5006 and gets the session over FRP7, inside
    connect_timeout of the start, instead of 4101."""
    server, ticket, sid = _default_timer_session(e2e, namespace, "oscar")
    namespace.drop_udp()
    terminal = e2e.terminal(ticket["connect_url"], prefix=namespace.prefix)
    terminal.wait_line(r"^\[5006 ", timeout=20)
    terminal.wait_line(rf"^connected to {sid} as c-", timeout=10)
    server.log.wait_event(event="session.started", session_id=sid)
    first = terminal.log.wait_event(event="connect.attempt")
    failed = terminal.log.wait_event(event="ice.failed", code=5006)
    fallback = terminal.log.wait_event(event="transport.fallback", code=5006)
    joined = terminal.log.wait_event(event="connection.established")
    assert failed["attrs"]["setup_budget_s"] == 13.0
    took = (parse_ts(joined["ts"]) - parse_ts(first["ts"])).total_seconds()
    assert took < DEFAULTS.connect_timeout, took
    assert parse_ts(fallback["ts"]) <= parse_ts(joined["ts"])
    assert not terminal.log.find(code=4101)
    established = server.log.wait_event(event="connection.opened", session_id=sid)
    assert established["attrs"]["frp"] == 7


def test_udp_blocked_mid_session_resumes_over_frp7(e2e: E2E, namespace: Namespace) -> None:
    server, ticket, sid = _default_timer_session(e2e, namespace, "peggy")
    terminal = e2e.terminal(ticket["connect_url"], prefix=namespace.prefix)
    terminal.wait_line(rf"^connected to {sid} as c-", timeout=20)
    server.log.wait_event(event="session.started", session_id=sid)
    namespace.drop_udp()
    lost = terminal.log.wait_event(event="ice.disconnected", timeout=15)
    assert lost["code"] == 4108
    terminal.log.wait_event(event="transport.fallback", code=5006, timeout=25)
    terminal.wait_line(rf"^connected to {sid} as c-.*\(resumed\)", timeout=10)
    server.log.wait_event(event="session.resumed", session_id=sid)
    assert not terminal.log.find(code=4106)
