"""The analyzer on logs of REAL sessions: server, fault proxy and terminals as processes.

Five sessions, each ended by its real condition, run side by side on one server:

    clean        the terminal closes it                                  -> 4000
    recovered    path black-holed (4102, server 4023), 4103, restored,
                 resumed, then closed                                    -> 4000
    exhausted    path cut and kept cut: 4029, 4103 x 3, 4106; the server
                 ends the idle session                                   -> 4009
    tampered     a raw client's hello with an edited config (4002);
                 nobody else comes, the server ends it unopened          -> 4019
    unreachable  a terminal whose server port is closed (4101); only the
                 terminal's log knows this session                       -> 4101

Then `openfrp analyze` (a subprocess, `--json` and `--session ID --json`) reads the server's
log and every terminal's log exactly as the processes left them.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, JsonlLog, free_port, hello_for

UNREACHABLE = "s-00000000deadbeef"


@dataclass
class Real:
    logs: list[str]
    sids: dict[str, str]
    terminal_logs: dict[str, JsonlLog]
    server_log: JsonlLog
    summary: dict[str, Any] = field(default_factory=dict)
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)


def analyze(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [OPENFRP, "analyze", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def run_sessions(e2e: E2E) -> Real:
    server = e2e.server(account={"open_timeout": 3.0})
    tickets: dict[str, dict[str, Any]] = {}

    def launch(name: str) -> dict[str, Any]:
        """Launched right before its terminal comes: a session nobody joins within the short
        open_timeout ends (4019), however loaded the machine is."""
        tickets[name] = server.launch(f"user-{name}")
        return tickets[name]

    # tampered: a hello whose config was edited (its digest kept) is refused with 4002.
    raw = e2e.raw(server.ws_url)
    edited = copy.deepcopy(launch("tampered")["config"])
    edited["launchpad"] = "admin-desktop"
    raw.send(hello_for(tickets["tampered"], config=edited))
    assert raw.wait_closed() == 4002

    via_recovered, via_exhausted = e2e.proxy(server.port), e2e.proxy(server.port)
    clean = e2e.connected(server, launch("clean"), name="clean")
    recovered = e2e.connected(server, launch("recovered"), via_recovered, name="recovered")
    exhausted = e2e.connected(server, launch("exhausted"), via_exhausted, name="exhausted")
    sids = {name: ticket["session_id"] for name, ticket in tickets.items()}

    # unreachable: a saved ticket whose WebSocket port nobody listens on.
    lost = copy.deepcopy(tickets["clean"])
    lost["session_id"] = lost["config"]["session_id"] = UNREACHABLE
    lost["ws_url"] = f"ws://127.0.0.1:{free_port()}/frp7"
    ticket_file = e2e.root / "unreachable-ticket.json"
    ticket_file.write_text(json.dumps(lost), encoding="utf-8")
    unreachable = e2e.terminal(str(ticket_file), name="unreachable")

    via_recovered.control("blackhole")
    via_exhausted.control("cut")  # and it stays cut
    clean.send("close")

    recovered.wait_line(r"^\[4102 CONNECTION_SEVERED\] ", timeout=6)
    recovered.wait_line(r"^\[4103 RECONNECTING\] ", timeout=4)
    via_recovered.control("restore")
    recovered.wait_line(rf"^connected to {sids['recovered']} as c-\w+ \(resumed\)$", timeout=8)
    # Its side of the story reaches the server's log once it is back.
    server.log.wait_event(
        event="reconnect.succeeded", source="terminal", session_id=sids["recovered"]
    )
    recovered.send("close")

    assert clean.wait_exit() == 0
    assert recovered.wait_exit() == 0
    assert exhausted.wait_exit(timeout=10) == 1
    assert unreachable.wait_exit(timeout=10) == 1
    for name, code in (("exhausted", 4009), ("tampered", 4019)):
        server.log.wait_event(event="session.ended", code=code, session_id=sids[name], timeout=8)

    terms = {"clean": clean, "recovered": recovered, "exhausted": exhausted}
    terms["unreachable"] = unreachable
    return Real(
        logs=[str(server.log.path)] + [str(t.log.path) for t in terms.values()],
        sids={**sids, "unreachable": UNREACHABLE},
        terminal_logs={name: t.log for name, t in terms.items()},
        server_log=server.log,
    )


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    env = E2E(tmp_path_factory.mktemp("real-sessions"))
    try:
        result = run_sessions(env)
    finally:
        env.close()
    result.summary = analyze(*result.logs)
    for name, sid in result.sids.items():
        result.timelines[name] = analyze(*result.logs, "--session", sid)
    yield result


def facts(real: Real, name: str) -> dict[str, Any]:
    session: dict[str, Any] = real.timelines[name]["session"]
    return session


def evidence(real: Real, name: str) -> set[tuple[str, str, int]]:
    items = real.timelines[name]["diagnosis"]["evidence"]
    return {(e["source"], e["event"], e["code"]) for e in items}


def terminal_count(real: Real, name: str, event: str) -> int:
    return len(real.terminal_logs[name].find(event=event))


# -- the fleet summary -----------------------------------------------------------------------


def test_summary_counts_every_session_and_no_bad_lines(real: Real) -> None:
    summary = real.summary
    assert summary["inputs"] == real.logs
    assert summary["bad_lines"] == {"count": 0, "by_file": {}, "lines": []}
    lines = sum(len(Path(p).read_text().splitlines()) for p in real.logs)
    assert summary["events"] == lines  # every line read, none lost
    kpis = summary["kpis"]
    assert (kpis["sessions"], kpis["ended"], kpis["open"], kpis["active"]) == (5, 5, 0, 3)
    assert (kpis["setup_failures"], kpis["mid_session_failures"], kpis["expected_ends"]) == (
        2,
        1,
        2,
    )
    categories = {c["category"]: c["sessions"] for c in summary["categories"]}
    assert categories == {
        "expected_end": 2,
        "reconnect_exhausted": 1,
        "nat_traversal": 0,
        "server_fault": 0,
        "host_display_fault": 0,
        "configuration": 1,
        "network_loss": 1,
        "server_crash": 0,
        "unknown": 0,
    }
    finals = {row["code"]: row["final"] for row in summary["top_codes"] if row["final"]}
    assert finals == {4000: 2, 4009: 1, 4019: 1, 4101: 1}
    seen = {row["code"]: row["sessions"] for row in summary["top_codes"]}
    assert seen[4102] == 2 and seen[4103] == 2 and seen[4106] == 1  # recovered + exhausted
    assert seen[4002] == 1 and seen[4029] == 1
    rec = summary["reconnects"]
    assert (rec["disrupted"], rec["recovered"], rec["gave_up"], rec["not_resumed"]) == (2, 1, 1, 0)
    assert rec["recovered_pct"] == 50.0
    assert summary["metrics"]["bad_lines"] == 0


# -- each session ----------------------------------------------------------------------------


def test_clean_close_is_an_expected_end(real: Real) -> None:
    s = facts(real, "clean")
    assert (s["final_code"], s["category"], s["phase"]) == (4000, "expected_end", "expected_end")
    assert s["active"] and s["ended"] and not s["recovered"] and not s["gave_up"]
    assert (s["disconnects"], s["reconnect_attempts"]) == (0, 0)
    assert s["client"] == "cli" and s["user"] == "user-clean"
    assert 0 <= s["time_to_connect_ms"] < 2000
    assert s["skew_ms"] is not None and abs(s["skew_ms"]) < 1000  # one machine, one clock
    assert real.timelines["clean"]["final"].startswith("4000 USER_CLOSED")
    assert ("server", "session.ended", 4000) in evidence(real, "clean")
    assert ("terminal", "connection.closed", 4000) in evidence(real, "clean")


def test_blackholed_then_resumed_is_recovered(real: Real) -> None:
    s = facts(real, "recovered")
    assert (s["final_code"], s["category"], s["phase"]) == (4000, "expected_end", "expected_end")
    assert s["recovered"] and not s["gave_up"]
    assert s["reconnect_attempts"] >= 1 and s["disconnects"] >= 1
    assert s["recovery_ms"] is not None and s["recovery_ms"] > 0
    assert {4000, 4102, 4103} <= set(s["codes"])
    assert set(s["codes"]) & {4023, 4029}  # the server saw the path die one way or the other
    assert 4106 not in s["codes"]


def test_cut_and_kept_cut_is_reconnect_exhausted(real: Real) -> None:
    s = facts(real, "exhausted")
    assert (s["final_code"], s["category"], s["phase"]) == (
        4009,
        "reconnect_exhausted",
        "mid_session_failure",
    )
    assert s["gave_up"] and not s["recovered"] and s["recovery_ms"] is None
    # Nothing was shipped (the terminal never got back), so these counts are exact.
    assert s["reconnect_attempts"] == terminal_count(real, "exhausted", "reconnect.attempt") == 3
    assert s["disconnects"] == 1
    assert set(s["codes"]) == {4029, 4102, 4103, 4106, 4009}
    assert {("terminal", "reconnect.gave_up", 4106), ("server", "session.ended", 4009)} <= (
        evidence(real, "exhausted")
    )
    assert real.timelines["exhausted"]["final"].startswith("4009 IDLE_TIMEOUT")


def test_tampered_hello_is_a_configuration_problem(real: Real) -> None:
    s = facts(real, "tampered")
    assert (s["final_code"], s["category"], s["phase"]) == (4019, "configuration", "setup_failure")
    assert not s["active"] and s["ended"] and s["attempted"]
    assert set(s["codes"]) == {4002, 4019}
    assert ("server", "connection.rejected", 4002) in evidence(real, "tampered")
    events = real.timelines["tampered"]["events"]
    assert [e["event"] for e in events] == [
        "session.created",
        "connection.opened",
        "connection.rejected",
        "session.ended",
    ]
    rejected = events[2]
    assert rejected["attrs"]["field"] == "config"


def test_closed_port_known_only_to_the_terminal_is_network_loss(real: Real) -> None:
    s = facts(real, "unreachable")
    assert (s["final_code"], s["category"], s["phase"]) == (4101, "network_loss", "setup_failure")
    assert not s["active"] and s["ended"] and s["attempted"]
    assert s["codes"] == [4101]
    assert evidence(real, "unreachable") == {("terminal", "connect.failed", 4101)}
    events = real.timelines["unreachable"]["events"]
    assert {e["source"] for e in events} == {"terminal"}
    assert {e["where"].rsplit(":", 1)[0] for e in events} == {
        str(real.terminal_logs["unreachable"].path)
    }
    told = [e["event"] for e in events if e["event"] != "stats"]  # stats: periodic telemetry
    assert told[-2:] == ["connect.failed", "message.shown"]
    assert len(events) == len(real.terminal_logs["unreachable"].events())


# -- one timeline from both sides ------------------------------------------------------------


def test_timeline_merges_terminal_and_server_events(real: Real) -> None:
    server_path = str(real.server_log.path)
    term_path = str(real.terminal_logs["exhausted"].path)
    events = real.timelines["exhausted"]["events"]
    files = {w.rsplit(":", 1)[0] for e in events for w in [e["where"], *e["also"]]}
    assert files == {server_path, term_path}
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    order = [(e["source"][0], e["event"], e["code"]) for e in events]

    def at(source: str, event: str, code: int | None = None) -> int:
        return order.index((source, event, code))

    # The two sides interleave in the order things happened.
    assert at("s", "session.created") < at("t", "connect.attempt")
    assert at("t", "connect.attempt") < at("s", "connection.opened")
    assert at("s", "session.started") < at("t", "connection.lost", 4102)
    assert at("t", "connection.lost", 4102) < at("t", "reconnect.gave_up", 4106)
    assert at("s", "session.disconnected", 4029) < at("t", "reconnect.gave_up", 4106)
    assert at("t", "reconnect.gave_up", 4106) < at("s", "session.ended", 4009) == len(order) - 1
    # Every event of the terminal's own log is in the timeline.
    places = [[e["where"], *e["also"]] for e in events]
    assert sum(any(w.startswith(term_path + ":") for w in p) for p in places) == len(
        real.terminal_logs["exhausted"].events()
    )


# -- terminal events present in both logs ----------------------------------------------------


def test_shipped_terminal_events_count_once(real: Real) -> None:
    """The terminal ships its events to the server's log, so they are in both logs."""
    events = real.timelines["recovered"]["events"]
    keys = Counter((e["source"], e["event"], e["logged_ts"], e["code"]) for e in events)
    assert [k for k, n in keys.items() if n > 1] == []
    s = facts(real, "recovered")
    attempts = terminal_count(real, "recovered", "reconnect.attempt")
    assert s["reconnect_attempts"] == attempts
    assert s["disconnects"] == 1
    (succeeded,) = real.terminal_logs["recovered"].find(event="reconnect.succeeded")
    assert s["recovery_ms"] == succeeded["attrs"]["recovery_ms"]
    rec = real.summary["reconnects"]
    assert rec["attempts"] == attempts + 3
    assert rec["recovery_p50_ms"] == succeeded["attrs"]["recovery_ms"]
