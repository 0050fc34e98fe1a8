"""ServerSession and TerminalConnection wired together in memory, with a path that is cut."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from openfrp.protocol.actions import Close, EndSession, Log
from openfrp.protocol.server_session import SessionState
from openfrp.protocol.terminal_connection import (
    Connect,
    Finished,
    Hangup,
    Receive,
    Show,
    TerminalConnection,
    TerminalState,
    show,
)
from tests.protocol.harness import FAST, Network, ticket

# Both sides ping every 400 ms, so on a healthy path nobody ever times out:
#   server: 4023 after 3 x 1000 ms of silence; terminal: 4102 after 2500 ms of silence.
E2E = replace(
    FAST,
    heartbeat_interval=0.4,
    receive_timeout=1.0,
    max_receive_timeouts=3,
    keepalive_timeout=2.5,
    reconnect_backoff_initial=0.5,
    reconnect_backoff_max=4.0,
    reconnect_attempts=8,
    reconnect_window=60.0,
    idle_timeout=60.0,
)


def is_log(event: str, code: int | None = None) -> Any:
    return lambda a: isinstance(a, Log) and a.event == event and (code is None or a.code == code)


def server_logs(net: Network, event: str) -> list[Log]:
    return [a for a in net.actions("server") if isinstance(a, Log) and a.event == event]


def terminal_logs(net: Network, event: str) -> list[Log]:
    return [a for a in net.actions("terminal") if isinstance(a, Log) and a.event == event]


def received(net: Network) -> list[Receive]:
    return [a for a in net.actions("terminal") if isinstance(a, Receive)]


def push_at(net: Network, at: int, n: int) -> None:
    net.run_until(at)
    net.call_server(lambda now: net.server.push({"n": n}, now))


def healthy_session(settings: Any = E2E) -> Network:
    net = Network(settings)
    net.start()
    assert net.terminal.state is TerminalState.ESTABLISHED
    assert net.server.state is SessionState.ACTIVE
    push_at(net, 1000, 1)
    push_at(net, 2000, 2)
    push_at(net, 4800, 3)  # the last traffic before the cut is at 4800
    net.run_until(5100)
    # healthy: everything delivered and acknowledged, no timeout on either side
    assert [r.seq for r in received(net)] == [1, 2, 3]
    assert net.server.unacked_bytes == 0
    assert net.when("server", is_log("receive.timeout")) == []
    return net


def test_cut_path_times_out_both_sides_then_resumes_without_loss() -> None:
    net = healthy_session()
    net.cut = True  # last exchange on the path: both sides' pings at 4800
    push_at(net, 5500, 4)  # sent into the void
    push_at(net, 7000, 5)

    # terminal: nothing received since 4800 -> 4102 at 4800 + 2500
    net.run_until(7299)
    assert net.when("terminal", lambda a: isinstance(a, Hangup)) == []
    net.run_until(7300)
    assert net.when("terminal", lambda a: a == Hangup(4102, "CONNECTION_SEVERED", True)) == [7300]
    assert net.when("terminal", lambda a: isinstance(a, Show) and a.code == 4102) == [7300]

    # server: receive timeouts at 5800, 6800, 7800 -> 4023 at 7800
    net.run_until(7799)
    assert net.when("server", lambda a: isinstance(a, Close)) == []
    net.run_until(7800)
    assert net.when("server", is_log("receive.timeout")) == [5800, 6800, 7800]
    counts = [a.attrs["count"] for a in server_logs(net, "receive.timeout")]
    assert counts == [1, 2, 3]
    assert net.when("server", lambda a: a == Close("c1", 4023, "RECEIVE_TIMEOUTS", True)) == [7800]
    assert net.server.state is SessionState.DISCONNECTED

    push_at(net, 12_000, 6)  # queued for the resume
    net.run_until(16_000)
    net.cut = False  # restore
    net.run_until(25_000)

    # reconnect attempts back off 500, 1000, 2000, 4000 (cap), 4000 ms after each failure
    attempts = net.when("terminal", is_log("reconnect.attempt", 4103))
    assert attempts == [7800, 8800, 10_800, 14_800, 18_800]
    connects = [(e.at, e.action) for e in net.events if isinstance(e.action, Connect)]
    assert connects[1:] == [(t, Connect(n)) for n, t in enumerate(attempts, start=1)]
    assert len([a for a in net.actions("terminal") if a == Show(4103, *_show(4103))]) == 5
    ok = terminal_logs(net, "reconnect.succeeded")
    assert len(ok) == 1
    assert ok[0].attrs == {"attempts": 5, "recovery_ms": 18_800 - 7300, "resumed": True}
    assert net.when("terminal", is_log("reconnect.succeeded")) == [18_800]
    assert ok[0].previous_connection_id == "c1" and ok[0].connection_id == "c2"
    resumed = server_logs(net, "session.resumed")
    assert resumed[0].attrs == {"replayed": 3}

    push_at(net, 26_000, 7)
    net.run_until(30_000)

    # nothing lost, nothing duplicated, in order, all acknowledged
    assert [r.seq for r in received(net)] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.body["n"] for r in received(net)] == [1, 2, 3, 4, 5, 6, 7]
    assert net.server.unacked_bytes == 0 and not net.server.unacked
    assert net.server.state is SessionState.ACTIVE and net.server.primary == "c2"
    assert net.terminal.state is TerminalState.ESTABLISHED
    assert not any(isinstance(a, Finished | EndSession) for e in net.events for a in [e.action])


def test_path_restored_before_the_server_notices_replaces_the_stale_connection() -> None:
    net = healthy_session(replace(E2E, max_receive_timeouts=6))  # 4023 would be at 10_800
    net.cut = True
    push_at(net, 6000, 4)
    net.run_until(7300)  # terminal 4102
    net.run_until(8000)  # attempt 1 at 7800 failed
    net.cut = False
    net.run_until(12_000)
    # attempt 2 at 8800 reaches a server that still holds c1: same terminal, so c1 is replaced
    assert net.when("terminal", is_log("reconnect.succeeded")) == [8800]
    assert net.when("server", lambda a: a == Close("c1", 4029, "CONNECTION_LOST", True)) == [8800]
    # silence counted at 5800, 6800, 7800, 8800 (4 of 6), then the resume resets it
    assert net.when("server", is_log("receive.timeout")) == [5800, 6800, 7800, 8800]
    assert not any(isinstance(a, Close) and a.code == 4023 for a in net.actions("server"))
    assert [r.seq for r in received(net)] == [1, 2, 3, 4]
    assert net.server.unacked_bytes == 0


def test_path_never_restored_terminal_gives_up_and_server_ends_idle() -> None:
    net = healthy_session(replace(E2E, reconnect_attempts=3))
    net.cut = True
    net.run_until(200_000)
    # terminal: lost at 7300, attempts at 7800, 8800, 10_800, all failed -> 4106 at 10_800
    assert net.when("terminal", is_log("reconnect.attempt")) == [7800, 8800, 10_800]
    assert net.when("terminal", lambda a: a == Finished(4106)) == [10_800]
    # server: 4023 at 7800, then nobody resumes within idle_timeout -> 4009
    assert net.when("server", lambda a: a == EndSession(4009)) == [7800 + 60_000]
    assert net.server.final_code == 4009


def test_close_session_end_to_end() -> None:
    net = healthy_session()
    net.call_terminal(net.terminal.close_session)
    assert net.server.final_code == 4000
    assert net.terminal.final_code == 4000
    assert Show(4000, *_show(4000)) in net.actions("terminal")


def test_a_leave_after_the_close_does_not_undo_it() -> None:
    """A script's end right after its `close` (or a tab closed right after Close session)
    leaves again at once: the close on its way stands, it was hung up before it went out."""
    net = healthy_session()
    net.call_terminal(lambda now: [*net.terminal.close_session(now), *net.terminal.disconnect(now)])
    assert net.server.final_code == 4000
    assert net.terminal.final_code == 4000


def test_disconnect_then_resume_end_to_end() -> None:
    net = healthy_session()
    net.call_terminal(net.terminal.disconnect)
    assert net.terminal.state is TerminalState.DONE and net.terminal.final_code is None
    assert net.server.state is SessionState.DISCONNECTED
    push_at(net, 9000, 4)
    # a new terminal (another device) resumes the same session
    net.terminal = TerminalConnection(ticket(), E2E)
    net.start()
    assert net.terminal.state is TerminalState.ESTABLISHED
    assert [r.seq for r in received(net)] == [1, 2, 3, 4]


def _show(code: int) -> tuple[str, str]:
    shown = show(code)
    return shown.text, shown.level
