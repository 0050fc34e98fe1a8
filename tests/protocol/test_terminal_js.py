"""The browser terminal's state machines (connection.js, peer_setup.js) against the Python
ones, step by step.

Hypothesis drives the Python TerminalConnection through random inputs at random times, ticks
included at its exact deadlines; Node runs the same steps through the JavaScript Connection,
and every action list, the next deadline and the final state must be the same. So the page
follows the rules the fake-clock tests pin down for the Python terminal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfrp import PROTOCOL_VERSION, codes
from openfrp.netcheck.verdict import ProbeResult, failure_lines, verdict
from openfrp.protocol.actions import Log
from openfrp.protocol.peer_setup import PeerSetup, Phase, SetupFailed
from openfrp.protocol.terminal_connection import (
    Connect,
    Finished,
    Hangup,
    Receive,
    SessionTicket,
    ShipEvents,
    Show,
    TerminalAction,
    TerminalConnection,
    Transmit,
)
from openfrp.server.sessions import TERMINAL_SETTINGS
from openfrp.settings import SessionSettings, setup_budget_ms
from openfrp.sizes import size_text

NODE = shutil.which("node")
DRIVER = Path(__file__).resolve().parents[1] / "support" / "connection_driver.js"
OPS = ("deadline", "deadline", "opened", "failed", "receive", "receive", "receive", "closed")
OPS += ("close_session", "disconnect", "tick", "setup_failed", "refused", "refused", "resume")
SETUP_FAILURES = [(4107, "signaling.timeout"), (5006, "ice.failed"), (5007, "negotiation.timeout")]
SETUP_FAILURES += [(5008, "peer.failed"), (4026, "connection.closed")]
JUNK = ("not json", '{"type": "nope"}', "[1]", '{"type": "ping"}', '{"type": 7}', "null")
JUNK += ('{"type": "ping", "id": 1, "extra": 2}', '{"type": "ping", "id": true}', "x" * 262145)
CLOSE_CODES = [None, 1000, 4000, 4002, 4003, 4008, 4009, 4019, 4023, 4024, 4029, 4102, 4999]
REASONS = ["r", "SEND_BUFFER_OVERFLOW" + codes.ENDED_SUFFIX]
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (Debian nodejs)")


class Node:
    """One long-lived `node` running the driver: a scenario line in, an answer line out."""

    def __init__(self) -> None:
        script = resources.files("openfrp.terminal").joinpath("static", "connection.js")
        assert NODE is not None
        self.process = subprocess.Popen(
            [NODE, str(DRIVER), str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, scenario: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(scenario) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    driver = Node()
    yield driver
    driver.stop()


def as_json(action: TerminalAction) -> dict[str, Any]:
    """A Python action in the shape the JavaScript machine returns."""
    if isinstance(action, Connect):
        return {"type": "connect", "attempt": action.attempt, "frp": action.frp}
    if isinstance(action, Transmit):
        return {"type": "transmit", "message": action.message}
    if isinstance(action, Hangup):
        return {"type": "hangup", "code": action.code, "reason": action.reason}
    if isinstance(action, Show):
        return {"type": "show", "code": action.code, "level": action.level, "text": action.text}
    if isinstance(action, Receive):
        return {"type": "receive", "seq": action.seq, "body": action.body}
    if isinstance(action, Finished):
        return {"type": "finished", "code": action.code}
    if isinstance(action, ShipEvents):
        return {"type": "ship"}
    assert isinstance(action, Log)
    data = asdict(action)
    data.pop("message")
    return parse_error({"type": "log", **data, "severity": action.severity or "info"})


def parse_error(log: dict[str, Any]) -> dict[str, Any]:
    """Each language's JSON parser words its error its own way: compare the verdict only."""
    error = log["attrs"].get("error")
    if log["event"] == "message.invalid" and str(error).startswith("not JSON"):
        return {**log, "attrs": {**log["attrs"], "error": "not JSON"}}
    return log


def normal_js(action: dict[str, Any]) -> dict[str, Any]:
    if action["type"] == "log":
        return parse_error({"connection_id": None, "previous_connection_id": None, **action})
    return action


def server_text(draw: st.DrawFn) -> str | None:
    """Something the server might send, valid or not; None stands for a binary frame."""
    kinds = ["welcome", "msg", "ping", "close", "warning", "display_change", "junk", "binary"]
    kind = draw(st.sampled_from(kinds))
    if kind == "welcome":
        return json.dumps(
            {
                "type": "welcome",
                "session_id": "s-1",
                "connection_id": f"c-{draw(st.integers(1, 4))}",
                "resume": draw(st.booleans()),
                "state": "active",
                "last_seq": 0,
            }
        )
    if kind == "msg":
        body = {"n": draw(st.integers(0, 9))}
        return json.dumps({"type": "msg", "seq": draw(st.integers(1, 4)), "body": body})
    if kind == "ping":
        return json.dumps({"type": "ping", "id": draw(st.integers(1, 9))})
    if kind == "close":
        code = draw(st.sampled_from([c for c in CLOSE_CODES if c is not None]))
        return json.dumps({"type": "close", "code": code, "reason": draw(st.sampled_from(REASONS))})
    if kind == "warning":
        seconds = draw(st.sampled_from([30, 119, 120, 300]))
        return json.dumps({"type": "warning", "code": 4008, "seconds_left": seconds})
    if kind == "display_change":
        return json.dumps({"type": "display_change", "change_id": draw(st.integers(1, 9))})
    if kind == "junk":
        return draw(st.sampled_from(JUNK))
    return None


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], list[list[dict[str, Any]]], Any]:
    values = {
        "connect_timeout": draw(st.integers(200, 3000)) / 1000,
        "keepalive_timeout": draw(st.integers(200, 3000)) / 1000,
        "heartbeat_interval": draw(st.integers(100, 2000)) / 1000,
        "reconnect_attempts": draw(st.integers(0, 4)),
        "reconnect_window": draw(st.integers(500, 20000)) / 1000,
        "reconnect_backoff_initial": draw(st.integers(50, 1000)) / 1000,
        "reconnect_backoff_max": draw(st.integers(1000, 4000)) / 1000,
        "ice_disconnected_after": draw(st.integers(200, 3000)) / 1000,
        "frp8_fallback": draw(st.sampled_from(["frp7", "none"])),
    }
    config = {"terminal": values, "user": "alice", "frp": draw(st.sampled_from([7, 8]))}
    ticket = SessionTicket("s-1", "tok", config, "digest", client="browser")
    machine = TerminalConnection(ticket, SessionSettings(**values), PROTOCOL_VERSION)
    now = draw(st.integers(0, 1000))
    steps: list[list[Any]] = [["start", now]]
    expected = [[as_json(a) for a in machine.start(now)]]
    for _ in range(draw(st.integers(1, 30))):
        op = draw(st.sampled_from(OPS))
        due = machine.next_deadline()
        if op == "deadline" and due is not None:
            now = max(now, due)
            op = "tick"
        else:
            now += draw(st.integers(0, 1500))
            op = "tick" if op == "deadline" else op
        if op == "opened":
            step, actions = ["opened", now], machine.transport_opened(now)
        elif op == "failed":
            step, actions = ["failed", now, "refused"], machine.transport_failed("refused", now)
        elif op == "refused":  # nothing listens: the TCP connect is refused
            error = "ConnectionRefusedError"
            step = ["failed", now, error, True]
            actions = machine.transport_failed(error, now, refused=True)
        elif op == "resume":
            step, actions = ["resume", now], machine.resume(now)
        elif op == "receive":
            text = server_text(draw)
            data: str | bytes = text if text is not None else b"\x00" * 12
            step, actions = ["receive", now, text], machine.receive(data, now)
        elif op == "closed":
            code, reason = draw(st.sampled_from(CLOSE_CODES)), draw(st.sampled_from(REASONS))
            step = ["closed", now, code, reason]
            actions = machine.transport_closed(code, reason, now)
        elif op == "close_session":
            step, actions = ["close_session", now], machine.close_session(now)
        elif op == "setup_failed":
            code, event = draw(st.sampled_from(SETUP_FAILURES))
            attrs = {"phase": "signaling"}
            step = ["setup_failed", now, code, event, attrs]
            actions = machine.setup_failed(code, event, attrs, now)
        elif op == "disconnect":
            step, actions = ["disconnect", now], machine.disconnect(now)
        else:
            step, actions = ["tick", now], machine.tick(now)
        steps.append(step)
        expected.append([as_json(a) for a in actions])
    table = {c.number: c.to_dict() for c in codes.TABLE}
    run = {
        "ticket": {
            "session_id": "s-1",
            "token": "tok",
            "config": config,
            "config_digest": "digest",
            "client": "browser",
        },
        "settings": values,
        "codes": table,
        "version": PROTOCOL_VERSION,
        "steps": steps,
    }
    return run, expected, (machine.next_deadline(), machine.state.value, machine.may_resume)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario())
def test_javascript_machine_acts_like_the_python_one(
    node: Node, case: tuple[dict[str, Any], list[list[dict[str, Any]]], Any]
) -> None:
    run, expected, (next_deadline, state, may_resume) = case
    answer = node.run(run)
    got = [[normal_js(a) for a in actions] for actions in answer["actions"]]
    for step, want, have in zip(run["steps"], expected, got, strict=True):
        assert have == want, f"after {step}"
    assert (answer["next"], answer["state"]) == (next_deadline, state)
    assert answer["may_resume"] == may_resume


def test_connect_window_ends_in_4101(node: Node) -> None:
    """No welcome within connect_timeout: the page hangs up with 4101 and is done."""
    values = {k: getattr(SessionSettings(), k) for k in TERMINAL_SETTINGS}
    run = {
        "ticket": {
            "session_id": "s",
            "token": "t",
            "config": {},
            "config_digest": "d",
            "client": "browser",
        },
        "settings": values,
        "codes": {c.number: c.to_dict() for c in codes.TABLE},
        "version": PROTOCOL_VERSION,
        "steps": [["start", 0], ["tick", 10**9]],
    }
    answer = node.run(run)
    assert answer["actions"][1][0] == {
        "type": "hangup",
        "code": 4101,
        "reason": "CONNECT_TIMEOUT",
    }
    assert answer["state"] == "done"


def test_a_refused_resume_names_the_refusal_in_the_page_too(node: Node) -> None:
    """Lost, then the restarted server turns the resume away (4004, session ended): the page's
    4106 pop-up names that code, as the Python terminal's line does, and its log line carries
    the refusal."""
    values = {k: getattr(SessionSettings(), k) for k in TERMINAL_SETTINGS}
    welcome = {"type": "welcome", "session_id": "s", "connection_id": "c-1", "resume": False}
    reason = codes.ended_reason(4004)
    run = {
        "ticket": {"session_id": "s", "token": "t", "config": {}, "config_digest": "d"},
        "settings": values,
        "codes": {c.number: c.to_dict() for c in codes.TABLE},
        "version": PROTOCOL_VERSION,
        "steps": [
            ["start", 0],
            ["opened", 1],
            ["receive", 2, json.dumps({**welcome, "state": "active", "last_seq": 0})],
            ["closed", 3, None, ""],
            ["tick", 10_000],
            ["opened", 10_001],
            ["closed", 10_002, 4004, reason],
        ],
    }
    refused = node.run(run)["actions"][-1]
    gave_up = next(a for a in refused if a.get("event") == "reconnect.gave_up")
    assert gave_up["attrs"] == {
        "refused_code": 4004,
        "refused_reason": reason,
        "since_lost_ms": 9999,
    }
    shown = [a["text"] for a in refused if a["type"] == "show"]
    row = codes.get(4106)
    assert shown == [
        f"[4004 SERVER_CONTROL_ERROR] {codes.get(4004).message}",
        f"[4106 RECONNECT_FAILED] {row.message_for(4004)}",
    ]
    assert "(4004 SERVER_CONTROL_ERROR)" in shown[-1] and row.message not in shown[-1]


SETUP_OPS = ("peer_found", "gathered", "answered", "ice_state", "connection_state")
SETUP_OPS += ("channel_open",)
SETUP_OPS += ("tick", "deadline", "deadline")
ICE_STATES = ("new", "checking", "connected", "completed", "failed", "disconnected", "closed")


@st.composite
def setup_scenario(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any], Any]:
    values = {
        name: draw(st.integers(100, 5000)) / 1000
        for name in ("signaling_peer_timeout", "negotiation_timeout", "ice_failed_after")
    }
    phase = draw(st.sampled_from([Phase.SIGNALING, Phase.CONNECTING]))
    now = draw(st.integers(0, 1000))
    budget = draw(st.one_of(st.none(), st.integers(100, 8000)))
    setup = PeerSetup(replace(SessionSettings(), **values), now, phase, budget)
    run: dict[str, Any] = {
        "setup": True,
        "settings": values,
        "start": now,
        "phase": phase.value,
        "budget": budget,
        "steps": [],
    }
    expected: list[Any] = []
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(SETUP_OPS))
        due = setup.next_deadline()
        if op == "deadline" and due is not None:
            now = max(now, due)
        else:
            now += draw(st.integers(0, 3000))
        op = "tick" if op == "deadline" else op
        arg = draw(st.sampled_from(ICE_STATES))
        result: Any
        if op == "ice_state":
            result, step = setup.ice_state(arg, now), [op, now, arg]
        elif op == "connection_state":
            result, step = setup.connection_state(arg, now), [op, now, arg]
        elif op == "gathered":
            found = {"host": 2, "relay": draw(st.integers(0, 1))}
            result, step = setup.gathered(found, now), [op, now, found]
        else:
            result, step = getattr(setup, op)(now), [op, now]
        run["steps"].append(step)
        expected.append(asdict(result) if isinstance(result, SetupFailed) else result)
    return run, expected, (setup.next_deadline(), setup.phase.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=setup_scenario())
def test_javascript_peer_setup_times_phases_like_the_python_one(
    node: Node, case: tuple[dict[str, Any], list[Any], Any]
) -> None:
    run, expected, (next_deadline, phase) = case
    answer = node.run(run)
    for step, want, have in zip(run["steps"], expected, answer["results"], strict=True):
        assert have == want, f"after {step}"
    assert (answer["next"], answer["phase"]) == (next_deadline, phase)


# What ICE servers did, as both terminals' verdicts take it.
PROBE_RESULTS = st.lists(
    st.builds(
        ProbeResult,
        kind=st.sampled_from(["stun", "turn"]),
        server=st.sampled_from(["stun:h:3478", "turn:h:3478?transport=tcp", "turns:h:443"]),
        ok=st.booleans(),
        detail=st.sampled_from(["no answer in 2.0 s", "credentials rejected (401)"]),
    ),
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(results=PROBE_RESULTS)
def test_javascript_ice_verdict_names_the_codes_the_python_probes_do(
    node: Node, results: list[ProbeResult]
) -> None:
    code, logs = verdict(results)
    answer = node.run({"verdict": [asdict(r) for r in results]})
    assert answer["code"] == code
    assert [normal_js(a) for a in answer["logs"]] == [as_json(log) for log in logs]


@settings(max_examples=100, deadline=None)
@given(results=PROBE_RESULTS)
def test_the_page_words_the_failed_probes_as_the_python_terminal(
    node: Node, results: list[ProbeResult]
) -> None:
    code, _ = verdict(results)
    if code is None:
        return
    table = {c.number: c.to_dict() for c in codes.TABLE}
    scenario = {"results": [asdict(r) for r in results], "code": code, "codes": table}
    assert node.run({"ice_lines": scenario})["lines"] == failure_lines(results, code)


def test_the_ended_mark_is_the_same_in_both_terminals() -> None:
    script = resources.files("openfrp.terminal").joinpath("static", "connection.js").read_text()
    assert f'const ENDED_SUFFIX = "{codes.ENDED_SUFFIX}";' in script


@settings(max_examples=300, deadline=None)
@given(count=st.one_of(st.integers(0, 5000), st.integers(0, 2**53 - 1)))
def test_the_page_words_sizes_as_the_python_terminal_does(node: Node, count: int) -> None:
    edges = [1, 1023, 1024, 1025, 100 * 2**20 - 1, 100 * 2**20, 100 * 2**20 + 1, 2**40]
    answer = node.run({"sizes": [count, *edges]})
    assert answer["sizes"] == [size_text(n) for n in [count, *edges]]


@pytest.mark.parametrize("connect_timeout", [1.0, 4.0, 15.0, 60.0])
def test_both_terminals_give_frp8_the_same_setup_budget(node: Node, connect_timeout: float) -> None:
    settings = replace(SessionSettings(), connect_timeout=connect_timeout)
    answer = node.run({"budget_of": settings.to_dict()})
    assert answer["budget"] == setup_budget_ms(settings)


def _lost_then(steps: list[list[Any]], values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A page connected as c-1, lost at 3, then `steps`."""
    welcome = {"type": "welcome", "session_id": "s", "connection_id": "c-1", "resume": False}
    return {
        "ticket": {"session_id": "s", "token": "t", "config": {}, "config_digest": "d"},
        "settings": values or {k: getattr(SessionSettings(), k) for k in TERMINAL_SETTINGS},
        "codes": {c.number: c.to_dict() for c in codes.TABLE},
        "version": PROTOCOL_VERSION,
        "steps": [
            ["start", 0],
            ["opened", 1],
            ["receive", 2, json.dumps({**welcome, "state": "active", "last_seq": 0})],
            ["closed", 3, None, ""],
            *steps,
        ],
    }


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4004, 4006, 4008, 4009, 4015, 4018, 4019])
def test_the_page_words_each_refused_resume_as_the_python_terminal(node: Node, code: int) -> None:
    """Each refusal a resume can meet reads the refusing code's own account in the page too
    (4009: disconnected too long, not "your network is not the cause")."""
    reason = codes.ended_reason(code) if code not in (4002, 4006) else codes.get(code).name
    answer = node.run(
        _lost_then([["tick", 10_000], ["opened", 10_001], ["closed", 10_002, code, reason]])
    )
    shown = [a["text"] for a in answer["actions"][-1] if a["type"] == "show"]
    assert shown[-1] == f"[4106 RECONNECT_FAILED] {codes.get(4106).message_for(code)}"
    assert answer["may_resume"] is (code == 4006)
    if code == 4009:
        assert "disconnected too long" in shown[-1] and "not the cause" not in shown[-1]


def test_the_page_says_the_server_is_down_when_nothing_listened_then_resumes(node: Node) -> None:
    """Every attempt refused by the TCP connect: the page's 4106 says the server did not
    accept the connection, and its log says all_refused; Resume is another round on the same
    connection chain, and a welcome resumes the session."""
    values = {k: getattr(SessionSettings(), k) for k in TERMINAL_SETTINGS}
    values.update(reconnect_attempts=2, reconnect_backoff_initial=1.0, reconnect_window=60.0)
    error = "connection failed (1006)"
    welcome = {"type": "welcome", "session_id": "s", "connection_id": "c-2", "resume": True}
    steps = [
        ["tick", 1003],
        ["failed", 1004, error, True],
        ["tick", 3004],
        ["failed", 3005, error, True],
        ["resume", 90_000],
        ["opened", 90_001],
        ["receive", 90_002, json.dumps({**welcome, "state": "active", "last_seq": 0})],
    ]
    answer = node.run(_lost_then(steps, values))
    gave_up = next(a for a in answer["actions"][7] if a.get("event") == "reconnect.gave_up")
    assert gave_up["attrs"]["all_refused"] is True and gave_up["attrs"]["last_error"] == error
    said = [a["text"] for a in answer["actions"][7] if a["type"] == "show"]
    assert said == [f"[4106 RECONNECT_FAILED] {codes.get(4106).message_for(unreachable=True)}"]
    assert "did not accept the connection" in said[0] and "network" not in said[0]
    again = answer["actions"][8]
    attempt = next(a for a in again if a.get("event") == "reconnect.attempt")
    assert attempt["attrs"] == {"attempt": 1, "since_lost_ms": 0, "round": 2}
    hello = answer["actions"][9][0]["message"]
    assert hello["resume"] is True and hello["previous_connection_id"] == "c-1"
    succeeded = next(a for a in answer["actions"][10] if a.get("event") == "reconnect.succeeded")
    assert succeeded["previous_connection_id"] == "c-1"
    assert answer["state"] == "established"
