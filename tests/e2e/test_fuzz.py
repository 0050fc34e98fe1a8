"""Property-based fuzzing of the FRP7 endpoint of a real server process.

Random bytes, random JSON and mutations of a valid hello go at the handshake; random and
mutated messages go into an active session. The contract allows exactly these outcomes, and the
test predicts which one from the payload with the same decoder and hello check the server uses:

- handshake: a welcome when the payload is a hello that fits the issued session, else a clean
  close with 4002;
- active session: the connection stays and answers a probe ping with a pong when the message is
  a valid terminal message, else a clean close with 4024 (which ends the connection, not the
  session: the next example resumes it).

Throughout, a bystander session with a real terminal keeps working, the server never logs
error.exception and never prints a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from openfrp import PROTOCOL_VERSION
from openfrp.protocol.handshake import Issued, check_hello
from openfrp.protocol.input import parse_input
from openfrp.protocol.messages import TERMINAL_MESSAGES, MessageError, decode_from_terminal
from tests.e2e.conftest import E2E
from tests.e2e.harness import (
    SECRET,
    E2EError,
    RawClient,
    ServerProcess,
    TerminalProcess,
    hello_for,
    outcome,
)

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
DEEP = "\u0000deep\u0000"  # placeholder swapped for raw deep nesting after json.dumps


@dataclass
class FuzzWorld:
    server: ServerProcess
    bystander: dict[str, Any]
    bystander_term: TerminalProcess
    e2e: E2E
    pushed: int = 0

    def check_bystander(self) -> None:
        """The other session is still connected and still gets reliable messages."""
        sid = self.bystander["session_id"]
        assert self.bystander_term.process.poll() is None, self.bystander_term.lines
        self.pushed += 1
        assert self.server.push(sid, {"still": self.pushed}).status == 202
        self.bystander_term.wait_line(rf'^msg {self.pushed} {{"still": {self.pushed}}}$')
        popups = [line for line in self.bystander_term.lines if line.startswith("[")]
        assert popups == [], popups
        assert self.server.session(sid)["state"] == "active"

    def check_no_crash(self) -> None:
        crashes = self.server.log.find(event="error.exception", source="server")
        assert crashes == [], json.dumps(crashes, indent=1)
        assert "Traceback" not in self.server.stderr()
        assert "Exception" not in self.server.stderr()


@pytest.fixture(scope="module")
def world(e2e_module: E2E) -> Iterator[FuzzWorld]:
    # The bystander's timers leave room for a loaded machine (the fuzzer's payloads run up to
    # 300 KB and 100,000 levels deep): a stall of a second is not the failure looked for.
    server = e2e_module.server(
        launchpads={
            "fuzz": {"receive_timeout": 30.0, "idle_timeout": 600.0},
            "steady": {"receive_timeout": 3.0, "keepalive_timeout": 6.0, "idle_timeout": 600.0},
        },
    )
    bystander = server.launch("bystander", "steady")
    term = e2e_module.connected(server, bystander, name="bystander")
    yield FuzzWorld(server, bystander, term, e2e_module)


# -- strategies ------------------------------------------------------------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=24)
)
JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
WEIRD = (
    JSON
    | st.integers(min_value=2**63, max_value=2**200)
    | st.integers(min_value=1, max_value=300_000).map(lambda n: "x" * n)
    | st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), max_size=40)
    | st.just(DEEP)
)
FIELD_NAMES = sorted({name for fields in TERMINAL_MESSAGES.values() for name in fields})
TYPES = sorted(TERMINAL_MESSAGES)
SAFE_TYPES = [t for t in TYPES if t not in ("close", "disconnect", "hello")]


def _serialize(draw: st.DrawFn, message: Any) -> str:
    text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    if json.dumps(DEEP) in text:
        depth = draw(st.sampled_from([10, 800, 5_000, 100_000]))
        text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth, 1)
    return text


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """`base` after one to three random edits, serialized (sometimes with deep nesting)."""
    message = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "set", "config", "flip", "type"]))
        keys = sorted(message) if isinstance(message, dict) else []
        if op == "drop" and keys:
            message.pop(draw(st.sampled_from(keys)))
        elif op == "set":
            key = draw(st.sampled_from([*FIELD_NAMES, "type"]) | st.text(max_size=10))
            message[key] = draw(WEIRD)
        elif op == "config" and isinstance(message.get("config"), dict):
            message["config"][draw(st.sampled_from(sorted(message["config"])))] = draw(JSON)
        elif op == "flip":
            strings = [k for k in keys if isinstance(message[k], str) and message[k]]
            if strings:
                key = draw(st.sampled_from(strings))
                value = message[key]
                at = draw(st.integers(0, len(value) - 1))
                char = draw(st.characters(exclude_categories=["Cs"]))
                message[key] = value[:at] + char + value[at + 1 :]
        elif op == "type":
            message["type"] = draw(st.sampled_from(TYPES) | st.text(max_size=8))
    text = _serialize(draw, message)
    if draw(st.integers(0, 9)) == 0 and text:  # sometimes break the JSON text itself
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.text(min_size=0, max_size=3)) + text[at + 1 :]
    return text


@st.composite
def deeply_nested(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """Nesting deeper than any sane message, alone or as the value of one of `base`'s fields."""
    depth = draw(st.sampled_from([50, 900, 5_000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nest = opener * depth + ("1" if opener != "[" else "") + closer * depth
    where = draw(st.sampled_from(["", *sorted(base)]))
    if not where:
        return nest
    return json.dumps({**base, where: DEEP}).replace(json.dumps(DEEP), nest, 1)


def random_payloads(session_id: str) -> st.SearchStrategy[str | bytes]:
    objects = st.dictionaries(st.text(max_size=10), JSON, max_size=5).map(
        lambda d: {**d, "session_id": session_id} if len(d) % 2 else d
    )
    return (
        st.binary(max_size=600)
        | st.text(max_size=300)
        | JSON.map(json.dumps)
        | objects.map(json.dumps)
    )


def typed(types: tuple[type, ...]) -> st.SearchStrategy[Any]:
    """Any value of a schema field's type: huge ints, unicode text, nested JSON."""
    by_type: dict[type, st.SearchStrategy[Any]] = {
        int: st.integers(min_value=-(2**80), max_value=2**80),
        str: st.text(max_size=60),
        bool: st.booleans(),
        dict: st.dictionaries(st.text(max_size=8), JSON, max_size=4),
        list: st.lists(JSON | st.dictionaries(st.text(max_size=8), JSON, max_size=3), max_size=5),
    }
    return by_type[types[0]]


@st.composite
def well_formed(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A message of type `kind` that fits the schema, with random values of the right types."""
    message: dict[str, Any] = {"type": kind}
    for name, (types, required) in TERMINAL_MESSAGES[kind].items():
        if required or draw(st.booleans()):
            message[name] = draw(typed(types))
    return message


@st.composite
def benign_hello(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """The valid hello with its optional fields dropped or set to any value of their type."""
    message = dict(base)
    for name, (types, required) in TERMINAL_MESSAGES["hello"].items():
        if required:
            continue
        choice = draw(st.sampled_from(["keep", "drop", "random"]))
        if choice == "drop":
            message.pop(name, None)
        elif choice == "random":
            message[name] = draw(typed(types))
    return json.dumps(message, ensure_ascii=draw(st.booleans()))


def valid_messages() -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed messages of the non-ending terminal types (no close/disconnect/hello)."""
    samples: dict[str, dict[str, Any]] = {
        "ping": {"id": 1},
        "pong": {"id": 1},
        "ack": {"seq": 0},
        "frame_ack": {"frame": 1},
        "input": {"kind": "key", "data": {"keysym": 97, "down": True}},
        "clipboard": {"text": "hi"},
        "display_ack": {"change_id": 1},
        "events": {"items": []},
    }
    return st.sampled_from(sorted(samples)).map(lambda t: {"type": t, **samples[t]})


def weighted(*branches: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a branch with the given weights (`|` would flatten and weigh every leaf)."""
    picks = [strategy for weight, strategy in branches for _ in range(weight)]
    return st.integers(0, len(picks) - 1).flatmap(lambda i: picks[i])


# -- oracles ---------------------------------------------------------------------------------


def hello_fits(payload: str | bytes, ticket: dict[str, Any]) -> bool:
    """Would the contract accept this first frame as the hello of `ticket`'s session?"""
    if isinstance(payload, bytes):
        return False
    try:
        message = decode_from_terminal(payload)
    except MessageError:
        return False
    if message["type"] != "hello" or message["session_id"] != ticket["session_id"]:
        return False
    if message.get("monitor"):
        return False  # a secondary monitor extends a live window; here none holds the session
    issued = Issued(
        ticket["session_id"], ticket["config"]["user"], ticket["config"], ticket["config_digest"]
    )
    return check_hello(message, issued, SECRET.encode(), PROTOCOL_VERSION) is None


def active_verdict(payload: str | bytes) -> str:
    """ "valid", "ending" (close/disconnect: skipped) or "invalid" (must be 4024)."""
    if isinstance(payload, bytes):
        return "invalid"
    try:
        message = decode_from_terminal(payload)
        if message["type"] == "input":
            parse_input(message)
    except MessageError:
        return "invalid"
    if message["type"] == "hello":
        return "invalid"
    if message["type"] in ("close", "disconnect"):
        return "ending"
    return "valid"


# -- tests -----------------------------------------------------------------------------------


def test_fuzz_handshake(world: FuzzWorld) -> None:
    server = world.server
    ticket = server.launch("fuzzer", "fuzz")
    valid = hello_for(ticket)
    stats = {"welcome": 0, "4002": 0}
    started = time.monotonic()

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        payload = data.draw(
            weighted(
                (3, mutated(valid)),
                (2, random_payloads(ticket["session_id"])),
                (1, benign_hello(valid)),
                (1, deeply_nested(valid)),
            ),
            label="payload",
        )
        raw = RawClient.open(server.ws_url)
        try:
            raw.send(payload)
            result = outcome(raw, timeout=5)
            if hello_fits(payload, ticket):
                assert result == ("welcome", None), (result, payload[:300])
                stats["welcome"] += 1
                raw.send({"type": "disconnect"})  # leave the session free for the next hello
                assert raw.wait_closed() == 1000
            else:
                assert result == ("closed", 4002), (result, payload[:300])
                stats["4002"] += 1
        finally:
            raw.close()

    run()
    print(f"handshake fuzz: {stats}")
    assert stats["welcome"] >= 1 and stats["4002"] >= 20, stats
    assert time.monotonic() - started < 40
    assert server.session(ticket["session_id"])["state"] in ("disconnected", "active")
    world.check_no_crash()
    world.check_bystander()


def test_fuzz_active_session(world: FuzzWorld) -> None:
    server = world.server
    ticket = server.launch("fuzzer", "fuzz")
    sid = ticket["session_id"]
    holder: dict[str, RawClient] = {}
    world_previous: dict[str, str] = {}
    stats = {"pong": 0, "4024": 0, "skipped": 0}
    probe = [10**6]
    started = time.monotonic()

    def client() -> RawClient:
        """The live raw client; after a 4024 a new one resumes the same session."""
        if "raw" not in holder:
            raw = RawClient.open(server.ws_url)
            previous = world_previous.get("cid")
            changes = {"resume": True, "previous_connection_id": previous} if previous else {}
            welcome = raw.handshake(hello_for(ticket, **changes))
            assert welcome["session_id"] == sid
            assert welcome["resume"] is bool(previous)
            if not previous:
                raw.wait_message("started")
            holder["raw"] = raw
        return holder["raw"]

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        payload: str | bytes = data.draw(
            weighted(
                (3, st.sampled_from(SAFE_TYPES).flatmap(well_formed).map(json.dumps)),
                (3, valid_messages().flatmap(mutated)),
                (1, mutated(hello_for(ticket))),
                (2, random_payloads(sid)),
                (1, valid_messages().flatmap(deeply_nested)),
            ),
            label="payload",
        )
        verdict = active_verdict(payload)
        if verdict == "ending":
            stats["skipped"] += 1
            return
        raw = client()
        probe[0] += 1
        try:
            raw.send(payload)
            raw.send({"type": "ping", "id": probe[0]})
        except ConnectionClosed:
            pass
        result = wait_probe(raw, probe[0])
        if verdict == "valid":
            assert result == ("pong", probe[0]), (result, payload[:300])
            stats["pong"] += 1
            return
        assert result == ("closed", 4024), (result, payload[:300])
        stats["4024"] += 1
        closed = server.log.wait_event(
            event="connection.closed", code=4024, session_id=sid, count=stats["4024"]
        )
        assert closed["connection_id"] == raw.connection_id
        world_previous["cid"] = str(raw.connection_id)
        raw.close()
        del holder["raw"]

    try:
        run()
    finally:
        if "raw" in holder:
            holder["raw"].close()
    print(f"active-session fuzz: {stats}")
    assert stats["pong"] >= 5 and stats["4024"] >= 10, stats
    assert time.monotonic() - started < 40
    # 4024 ended connections, never the session; it resumed after each one.
    assert not server.log.find(event="session.ended", session_id=sid)
    resumed = server.log.find(event="session.resumed", session_id=sid)
    assert len(resumed) == stats["4024"] - (1 if "raw" not in holder else 0)
    world.check_no_crash()
    world.check_bystander()


def wait_probe(raw: RawClient, probe: int, timeout: float = 5.0) -> tuple[str, int | None]:
    """Read until the pong of `probe` (the connection lives) or the close (its code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, value = outcome(raw, timeout=max(0.05, deadline - time.monotonic()))
        except E2EError:
            break
        if kind == "closed" or value == probe:
            return kind, value
    raise E2EError(f"no pong for probe {probe} and no close within {timeout}s")
