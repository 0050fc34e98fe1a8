"""PeerSetup and the terminal's FRP8 rules, at exact milliseconds on a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from openfrp.protocol.handshake import digest
from openfrp.protocol.peer_setup import PeerSetup, Phase, SetupFailed
from openfrp.protocol.terminal_connection import (
    Connect,
    Finished,
    Hangup,
    SessionTicket,
    Show,
    TerminalConnection,
    TerminalState,
    Transmit,
)
from openfrp.settings import budget_problem, setup_budget_ms
from tests.protocol.harness import CONFIG, FAST, SESSION_ID, logs, of_type, token, wire

HOST_ONLY = {"host": 1}
SETTINGS = replace(
    FAST,
    signaling_peer_timeout=2.0,
    negotiation_timeout=3.0,
    ice_failed_after=4.0,
    ice_disconnected_after=1.2,
    frp8_fallback="none",
)


def test_no_peer_id_in_time_is_4107_at_the_deadline() -> None:
    setup = PeerSetup(SETTINGS, 1000)
    assert setup.next_deadline() == 3000
    assert setup.tick(2999) is None
    failed = setup.tick(3000)
    assert failed == SetupFailed(4107, "signaling.timeout", failed.attrs if failed else {})
    assert failed is not None and failed.attrs["phase"] == "signaling"
    assert failed.attrs["signaling_peer_timeout_s"] == 2.0
    assert setup.phase is Phase.FAILED and setup.next_deadline() is None


def test_no_answer_in_time_is_5007_counted_from_the_peer_id() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(1500)
    setup.gathered(HOST_ONLY, 1500)
    assert setup.next_deadline() == 4500
    failed = setup.tick(4500)
    assert failed is not None and (failed.code, failed.event) == (5007, "negotiation.timeout")


def test_ice_that_never_connects_is_5006_after_ice_failed_after() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(100)
    setup.gathered(HOST_ONLY, 100)
    setup.answered(300)
    assert setup.ice_state("checking", 400) is None
    assert setup.tick(4299) is None
    failed = setup.tick(4300)
    assert failed is not None and failed.code == 5006
    assert failed.attrs["ice_states"] == ["checking"]


def test_ice_failed_state_is_5006_at_once() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(0)
    setup.gathered(HOST_ONLY, 0)
    setup.answered(0)
    failed = setup.ice_state("failed", 700)
    assert failed is not None and failed.code == 5006 and failed.attrs["elapsed_ms"] == 700


@pytest.mark.parametrize(("ice", "code"), [("completed", 5008), ("checking", 5006)])
def test_peer_connection_failed_names_the_layer(ice: str, code: int) -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(0)
    setup.gathered(HOST_ONLY, 0)
    setup.answered(0)
    setup.ice_state(ice, 100)
    failed = setup.connection_state("failed", 200)
    assert failed is not None and failed.code == code


def test_ice_up_but_no_channel_is_5008_at_the_deadline() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(0)
    setup.gathered(HOST_ONLY, 0)
    setup.answered(0)
    setup.ice_state("connected", 100)
    failed = setup.tick(4000)
    assert failed is not None and (failed.code, failed.event) == (5008, "peer.failed")


def test_an_open_channel_stops_every_timer() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(10)
    setup.gathered(HOST_ONLY, 10)
    setup.answered(20)
    setup.ice_state("completed", 30)
    assert setup.channel_open(40) == 40
    assert setup.next_deadline() is None
    assert setup.tick(10**9) is None
    assert setup.connection_state("failed", 50) is None


def test_gathering_is_its_own_phase_and_a_stall_there_is_5006_not_5007() -> None:
    """Blocked UDP makes gathering wait for STUN/TURN: that is ICE, whatever
    negotiation_timeout says."""
    setup = PeerSetup(replace(SETTINGS, negotiation_timeout=0.5), 0)
    setup.peer_found(100)
    assert setup.phase is Phase.GATHERING
    assert setup.next_deadline() == 100 + 4000  # ice_failed_after, not negotiation_timeout
    assert setup.tick(4099) is None
    failed = setup.tick(4100)
    assert failed is not None and (failed.code, failed.event) == (5006, "ice.failed")
    assert failed.attrs["phase"] == "gathering"


def test_gathered_candidates_start_the_negotiation_and_are_kept() -> None:
    setup = PeerSetup(SETTINGS, 0)
    setup.peer_found(100)
    setup.gathered({"host": 2, "srflx": 0, "relay": 0}, 2600)
    assert setup.phase is Phase.NEGOTIATING and setup.next_deadline() == 2600 + 3000
    failed = setup.tick(5600)
    assert failed is not None and failed.code == 5007
    assert failed.attrs["candidates"] == {"host": 2, "srflx": 0, "relay": 0}


def test_the_setup_budget_cuts_any_phase_with_its_own_code() -> None:
    """With the default timers ICE alone (15 s) is as long as connect_timeout (15 s): the
    budget ends it in time for the fallback, as 5006, not as the attempt's 4101."""
    defaults = replace(SETTINGS, signaling_peer_timeout=10.0, ice_failed_after=15.0)
    budget = setup_budget_ms(replace(defaults, connect_timeout=15.0))
    assert budget == 13_000
    setup = PeerSetup(defaults, 0, budget_ms=budget)
    setup.peer_found(200)
    setup.gathered(HOST_ONLY, 5200)  # an unreachable TURN server held gathering for 5 s
    setup.answered(5300)
    assert setup.next_deadline() == 13_000
    failed = setup.tick(13_000)
    assert failed is not None and failed.code == 5006
    assert failed.attrs["setup_budget_s"] == 13.0 and failed.attrs["phase"] == "connecting"


@pytest.mark.parametrize(
    ("connect_timeout", "budget"), [(15.0, 13_000), (4.0, 3000), (60.0, 58_000)]
)
def test_the_budget_keeps_a_reserve_for_the_hello_or_the_fallback(
    connect_timeout: float, budget: int
) -> None:
    assert setup_budget_ms(replace(SETTINGS, connect_timeout=connect_timeout)) == budget


def test_timers_that_cannot_fit_the_budget_are_named() -> None:
    assert (
        budget_problem(replace(SETTINGS, connect_timeout=15.0, signaling_peer_timeout=10)) is None
    )
    problem = budget_problem(replace(SETTINGS, connect_timeout=8.0, signaling_peer_timeout=10))
    assert problem is not None and problem.startswith("signaling_peer_timeout (10 s)")


def test_the_server_side_starts_at_connecting() -> None:
    setup = PeerSetup(SETTINGS, 0, Phase.CONNECTING)
    assert setup.next_deadline() == 4000


# -- the terminal on FRP8 ------------------------------------------------------------------


def frp8_terminal(fallback: str = "none") -> TerminalConnection:
    config = {**CONFIG, "frp": 8}
    ticket = SessionTicket(SESSION_ID, token(), config, digest(config), client="test")
    return TerminalConnection(ticket, replace(SETTINGS, frp8_fallback=fallback))


def welcome(term: TerminalConnection, now: int) -> None:
    term.transport_opened(now)
    message = {"type": "welcome", "session_id": SESSION_ID, "connection_id": "c1"}
    term.receive(wire({**message, "resume": False, "state": "active", "last_seq": 0}), now)
    assert term.state is TerminalState.ESTABLISHED


def test_frp8_heartbeat_is_quick_and_silence_is_4108_not_4102() -> None:
    term = frp8_terminal()
    term.start(0)
    welcome(term, 0)
    assert term.next_deadline() == 400  # a third of ice_disconnected_after
    pings = of_type(term.tick(400), Transmit)
    assert pings and pings[0].message["type"] == "ping"
    term.tick(800)
    actions = term.tick(1200)
    assert Hangup(4108, "ICE_DISCONNECTED", abort=True) in actions
    (lost,) = logs(actions, "ice.disconnected")
    assert lost.code == 4108 and lost.attrs["keepalive_timeout_s"] == 1.2
    assert [s.code for s in of_type(actions, Show)] == [4108]
    assert term.state is TerminalState.WAITING


def test_frp8_setup_failure_ends_a_first_connection_with_its_code() -> None:
    term = frp8_terminal()
    assert of_type(term.start(0), Connect)
    actions = term.setup_failed(5006, "ice.failed", {"phase": "connecting"}, 4000)
    assert [s.code for s in of_type(actions, Show)] == [5006]
    assert logs(actions, "ice.failed")[0].code == 5006
    assert of_type(actions, Finished) == [Finished(5006)]
    assert term.final_code == 5006


def test_frp8_setup_failure_while_reconnecting_is_one_failed_attempt() -> None:
    term = frp8_terminal()
    term.start(0)
    welcome(term, 0)
    term.transport_closed(None, "", 500)  # the channel closed without a close message
    actions = term.tick(1000)  # the first retry
    assert of_type(actions, Connect) == [Connect(1, frp=8)]
    actions = term.setup_failed(4107, "signaling.timeout", {"phase": "signaling"}, 3000)
    assert logs(actions, "signaling.timeout")[0].code == 4107
    assert not of_type(actions, Finished)
    assert term.state is TerminalState.WAITING and term.attempt == 1


def test_setup_failure_outside_an_attempt_is_ignored() -> None:
    term = frp8_terminal()
    term.start(0)
    welcome(term, 0)
    assert term.setup_failed(5007, "negotiation.timeout", {}, 100) == []


@pytest.mark.parametrize("reconnecting", [False, True])
def test_frp8_setup_failure_falls_back_to_frp7_for_good(reconnecting: bool) -> None:
    term = frp8_terminal(fallback="frp7")
    assert of_type(term.start(0), Connect) == [Connect(0, frp=8)]
    if reconnecting:
        welcome(term, 0)
        term.transport_closed(None, "", 500)
        assert of_type(term.tick(1000), Connect) == [Connect(1, frp=8)]
    actions = term.setup_failed(5006, "ice.failed", {"phase": "connecting"}, 6000)
    (fallback,) = logs(actions, "transport.fallback")
    assert fallback.code == 5006 and fallback.attrs == {"from_frp": 8, "to_frp": 7}
    assert [s.code for s in of_type(actions, Show)] == [5006]
    assert of_type(actions, Connect) == [Connect(term.attempt, frp=7)]  # at once, no backoff
    assert not of_type(actions, Finished) and term.state is TerminalState.CONNECTING
    welcome(term, 6100)
    assert term.next_deadline() == 6100 + FAST.heartbeat_interval * 1000  # FRP7 timers now
    term.transport_closed(None, "", 6200)
    assert of_type(term.tick(10**6), Connect)[-1].frp == 7
