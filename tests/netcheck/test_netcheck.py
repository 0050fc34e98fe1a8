"""`openfrp netcheck` against a real coturn: 5009, 5010 and 5019 by their real conditions.

A STUN server that never answers, wrong TURN credentials, nothing listening, and a firewall
(nft inside a network namespace the test creates) that drops UDP while TCP passes; then what
needs no coturn: a link the server refuses or that reaches no server, and the addresses given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp import codes
from openfrp.events import read_events
from openfrp.netcheck.probes import Server, parse_server, probe_stun, probe_turn
from openfrp.netcheck.verdict import ProbeResult, verdict
from tests.support.coturn import PASSWORD, TURNSERVER, USER, Coturn, free_port, start_coturn
from tests.support.fake_api import fake_api

OPENFRP = str(Path(sys.executable).with_name("openfrp"))


def netcheck(*args: str, prefix: list[str] | None = None) -> tuple[int, dict[str, Any], float]:
    began = time.perf_counter()
    proc = subprocess.run(
        [*(prefix or []), OPENFRP, "netcheck", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - began
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), elapsed


def creds() -> list[str]:
    return ["--turn-user", USER, "--turn-password", PASSWORD]


def by_kind(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["kind"]: p for p in report["probes"]}


def test_both_helpers_answer(coturn: Coturn, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    status, report, _ = netcheck(
        "--stun", f"stun:127.0.0.1:{coturn.port}", "--turn", f"turn:127.0.0.1:{coturn.port}",
        *creds(), "--log", str(log), "--session", "s-42",
    )  # fmt: skip
    assert status == 0 and report["code"] is None
    probes = by_kind(report)
    assert probes["stun"]["ok"] and probes["stun"]["mapped"].startswith("127.0.0.1:")
    assert probes["turn"]["ok"] and probes["turn"]["relayed"].startswith("127.0.0.1:")
    events = list(read_events(log))
    assert [(e.event, e.code, e.session_id) for e in events] == [
        ("probe.stun", None, "s-42"),
        ("probe.turn", None, "s-42"),
    ]
    assert events[0].attrs["rtt_ms"] >= 0


def test_wrong_turn_password_is_5010_credentials_rejected(coturn: Coturn, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    for transport in ("udp", "tcp"):
        status, report, _ = netcheck(
            "--stun", f"127.0.0.1:{coturn.port}",
            "--turn", f"turn:127.0.0.1:{coturn.port}?transport={transport}",
            "--turn-user", USER, "--turn-password", "wrong", "--log", str(log),
        )  # fmt: skip
        assert status == 1 and report["code"] == 5010
        assert report["message"] == codes.get(5010).message
        turn = by_kind(report)["turn"]
        assert not turn["ok"] and "401" in turn["error"] and turn["status"] == 401
        assert by_kind(report)["stun"]["ok"]
    logged = [e for e in read_events(log) if e.event == "probe.turn"]
    assert [(e.code, e.attrs["status"]) for e in logged] == [(5010, 401), (5010, 401)]


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port where datagrams arrive and nothing ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield int(sock.getsockname()[1])
    sock.close()


def test_stun_that_never_answers_is_5009_at_stun_timeout(coturn: Coturn, silent_udp: int) -> None:
    status, report, elapsed = netcheck(
        "--stun", f"stun:127.0.0.1:{silent_udp}", "--turn", f"turn:127.0.0.1:{coturn.port}",
        *creds(), "--stun-timeout", "1.5",
    )  # fmt: skip
    assert status == 1 and report["code"] == 5009
    assert by_kind(report)["stun"]["error"] == "no answer in 1.5 s"
    assert by_kind(report)["turn"]["ok"]
    assert 1.5 <= elapsed < 4.0, elapsed


def test_nothing_there_is_5019(silent_udp: int, tmp_path: Path) -> None:
    closed = free_port()
    log = tmp_path / "events.jsonl"
    status, report, _ = netcheck(
        "--stun", f"stun:127.0.0.1:{silent_udp}", "--turn", f"turn:127.0.0.1:{closed}",
        *creds(), "--stun-timeout", "1", "--turn-timeout", "1", "--log", str(log),
    )  # fmt: skip
    assert status == 1 and report["code"] == 5019
    assert [(e.event, e.code, e.session_id) for e in read_events(log)] == [
        ("probe.stun", 5009, None),
        ("probe.turn", 5010, None),
        ("probe.failed", 5019, None),
    ]
    assert next(read_events(log)).message == codes.get(5009).message


NS_TOOLS = all(shutil.which(tool) for tool in ("ip", "nft")) and TURNSERVER is not None


@pytest.mark.skipif(not NS_TOOLS or os.geteuid() != 0, reason="needs root, iproute2, nft, coturn")
def test_firewall_dropping_udp_is_5009_while_turn_over_tcp_passes(tmp_path: Path) -> None:
    """Inside a network namespace of its own, nft drops the UDP datagrams to the helpers' port:
    first on the way in (a black hole on the path: STUN goes unanswered while TURN over TCP
    still allocates a relay), then on the way out (a local firewall: sending is refused)."""
    ns = f"ofrp-nc-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server: Coturn | None = None
    inside = ["ip", "netns", "exec", ns]

    def drop_udp(hook: str) -> None:
        rules = (
            "flush ruleset\ntable inet openfrp_test {\n  chain c {\n"
            f"    type filter hook {hook} priority 0;\n"
            f"    udp dport {port} drop\n  }}\n}}\n"
        )
        subprocess.run([*inside, "nft", "-f", "-"], input=rules, text=True, check=True)

    try:
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        server = start_coturn(tmp_path, prefix=inside)
        port = server.port
        drop_udp("input")
        status, report, elapsed = netcheck(
            "--stun", f"stun:127.0.0.1:{port}", "--turn", f"turn:127.0.0.1:{port}?transport=tcp",
            *creds(), "--stun-timeout", "1", prefix=inside,
        )  # fmt: skip
        assert status == 1 and report["code"] == 5009, report
        assert by_kind(report)["stun"]["error"] == "no answer in 1.0 s"
        assert by_kind(report)["turn"]["ok"] and by_kind(report)["turn"]["transport"] == "tcp"
        assert elapsed >= 1.0

        drop_udp("output")
        status, report, _ = netcheck(
            "--stun", f"stun:127.0.0.1:{port}", "--turn", f"turn:127.0.0.1:{port}",
            *creds(), "--stun-timeout", "1", "--turn-timeout", "1", prefix=inside,
        )  # fmt: skip
        assert status == 1 and report["code"] == 5019, report
        assert "firewall" in by_kind(report)["stun"]["error"]
        assert report["action"] == codes.get(5019).action
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "at least one --stun, --turn or --signaling"),
        (["--stun", "stun:nowhere:x"], "--stun 'stun:nowhere:x': write stun:HOST[:PORT]"),
        (["--stun", "stun:h:1?transport=tcp"], "only turn:"),
        (["--turn", "turn:127.0.0.1:3478"], "--turn-user and --turn-password"),
        (["--stun", "127.0.0.1:3478", "--stun-timeout", "0"], "more than 0"),
        (["--stun", "http://127.0.0.1:3478"], "write stun:HOST[:PORT]"),
        (["--stun", "turn:127.0.0.1:3478"], "write stun:HOST[:PORT]"),
        (["--turn", "stun:127.0.0.1:3478", *creds()], "write turn:HOST[:PORT]"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], says: str) -> None:
    proc = subprocess.run([OPENFRP, "netcheck", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr


def test_verdict_codes() -> None:
    ok = ProbeResult("stun", "s", True, rtt_ms=1.0)
    turn_ok = ProbeResult("turn", "t", True, rtt_ms=2.0)
    stun_bad = ProbeResult("stun", "s", False, detail="no answer")
    turn_bad = ProbeResult("turn", "t", False, detail="refused")
    assert verdict([ok, turn_ok])[0] is None
    assert verdict([stun_bad, turn_ok])[0] == 5009
    assert verdict([ok, turn_bad])[0] == 5010
    code, logs = verdict([stun_bad, turn_bad])
    assert code == 5019
    assert [(log.event, log.code) for log in logs] == [
        ("probe.stun", 5009),
        ("probe.turn", 5010),
        ("probe.failed", 5019),
    ]
    assert verdict([ok, stun_bad])[0] == 5009  # one of two STUN servers failing is still 5009


@pytest.fixture
def refusing_proxy() -> Iterator[int]:
    """A front end that answers every request, a WebSocket upgrade too, with HTTP 400."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop = True
    thread.join(2)
    listener.close()


def test_an_frp7_websocket_a_proxy_refuses_or_nobody_serves_is_4101(
    refusing_proxy: int, tmp_path: Path
) -> None:
    """--link with an FRP7 session's ticket: an upgrade answered with a plain HTTP status
    names the front end as the likely cause; a closed port says nothing listens."""
    ticket = {"session_id": "s-1", "token": "t", "config": {"frp": 7}, "config_digest": "d"}
    for url, says in (
        (f"ws://127.0.0.1:{refusing_proxy}/frp7", "answered with HTTP 400"),
        (f"ws://127.0.0.1:{free_port()}/frp7", "refused (nothing listens on that port)"),
    ):
        saved = tmp_path / "ticket.json"
        saved.write_text(json.dumps({**ticket, "ws_url": url}))
        log = tmp_path / "probe.jsonl"
        status, report, _ = netcheck("--link", str(saved), "--log", str(log))
        assert status == 1 and report["code"] == 4101, report
        [probe] = report["probes"]
        assert probe["kind"] == "frp7" and not probe["ok"] and says in probe["error"]
        [event] = [e for e in read_events(log) if e.event == "probe.frp7"][-1:]
        assert (event.code, event.session_id, event.frp) == (4101, "s-1", 7)
        if "HTTP" in says:  # the status a proxy gave, and where a working setup is shown
            assert probe["status"] == 400 and "docs/nginx.conf" in probe["error"]


LINK_OVER = "This session is over: ask whoever sent you the link for a new session."


@pytest.mark.parametrize(
    ("status", "answer", "code", "says"),
    [
        (410, {"error": "session 's-1' has ended", "final_code": 4019, "next": LINK_OVER}, 4019,
         f"410 session 's-1' has ended. {LINK_OVER}"),
        (401, {"error": "invalid token: token has expired", "next": "Ask for a new one."}, 4002,
         "401 invalid token: token has expired. Ask for a new one."),
    ],
)  # fmt: skip
def test_a_link_the_server_refuses_is_a_verdict_with_its_reason(
    status: int, answer: dict[str, Any], code: int, says: str, tmp_path: Path
) -> None:
    """An ended session is its final code, a refused token the 4002 its hello would get."""
    log = tmp_path / "probe.jsonl"
    with fake_api(status, answer) as api:
        result, report, _ = netcheck("--link", f"{api.url}/s/s-1#token=t", "--log", str(log))
    assert result == 1 and report["code"] == code, report
    [probe] = report["probes"]
    assert probe["kind"] == "link" and not probe["ok"] and says in probe["error"]
    assert probe["server"] == f"{api.url}/s/s-1" and probe["status"] == status
    [event] = read_events(log)
    assert (event.event, event.code, event.session_id) == ("probe.link", code, None)


def test_a_link_whose_server_cannot_be_reached_is_4101() -> None:
    link = f"http://127.0.0.1:{free_port()}/s/s-1#token=t"
    proc = subprocess.run([OPENFRP, "netcheck", "--link", link], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert "FAILED" in lines[0] and "server not reachable" in lines[0]
    assert "is the server running" in lines[0] and "token" not in lines[0]
    assert lines[1] == f"verdict: [4101 CONNECT_TIMEOUT] {codes.get(4101).message}"


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("stun", "stun:127.0.0.1:3478", Server("stun", "127.0.0.1", 3478)),
        ("stun", "STUN:127.0.0.1:3478", Server("stun", "127.0.0.1", 3478)),
        ("stun", "127.0.0.1:3478", Server("stun", "127.0.0.1", 3478)),
        ("stun", "localhost:3478", Server("stun", "localhost", 3478)),
        ("stun", "stun:[::1]:3478", Server("stun", "::1", 3478)),
        ("stun", "stun:stun.example.invalid:19302", Server("stun", "stun.example.invalid", 19302)),
        ("turn", "Turn:127.0.0.1:3478?transport=tcp", Server("turn", "127.0.0.1", 3478, "tcp")),
        ("turn", "turns:turn.example.invalid:5349",
         Server("turn", "turn.example.invalid", 5349, "tcp", secure=True)),
        ("stun", "stun:stun.example.invalid", Server("stun", "stun.example.invalid", 3478)),
        ("turn", "turns:[::1]", Server("turn", "::1", 5349, "tcp", secure=True)),
        ("turn", "turn:h?transport=udp", Server("turn", "h", 3478)),
    ],
)  # fmt: skip
def test_server_addresses_parse_with_their_scheme_in_any_case(
    kind: str, text: str, expected: Server
) -> None:
    assert parse_server(kind, text) == expected
    assert parse_server(kind, str(expected)) == expected


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("stun", "http://127.0.0.1:3478"),
        ("stun", "turn:127.0.0.1:3478"),
        ("turn", "stun:127.0.0.1:3478"),
        ("stun", "stun://127.0.0.1:3478"),
        ("stun", "stun:a b.invalid:3478"),
        ("stun", "stun:127.0.0.1:3478/x"),
        ("stun", "stuns:stun.example.invalid:5349"),
        ("turn", "turns:turn.example.invalid:5349?transport=udp"),
    ],
)
def test_addresses_of_another_form_are_refused(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"write {kind}s?:HOST"):
        parse_server(kind, text)


def test_a_helper_whose_name_does_not_resolve_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no DNS lookup at all
    stun = asyncio.run(probe_stun(parse_server("stun", "stun:stun.example.invalid:3478"), 1.0))
    turn_server = parse_server("turn", "turn:turn.example.invalid:3478")
    turn = asyncio.run(probe_turn(turn_server, USER, PASSWORD, 1.0))
    for result, name in ((stun, "stun.example.invalid"), (turn, "turn.example.invalid")):
        assert not result.ok
        assert result.detail == (
            f"{name} does not resolve (Name or service not known): check the name and this "
            "machine's DNS"
        )
    assert verdict([stun, turn])[0] == 5019
