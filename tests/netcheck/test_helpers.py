"""STUN/TURN addresses and probes where netcheck, the session's own probe and the peers meet.

A TURN server whose UDP port is closed answers with ICMP port unreachable: the TURN probe says
"refused" at once, as the STUN probe does, instead of "no answer" after turn_timeout (which
points at a firewall). A TURN URL of another form (turn://HOST:PORT) is refused by netcheck in
the same words as by `serve`; one a session carries anyway is a failed probe (5010), never a
server left out so that the check reports all clear. Bad timeouts, a log it cannot write and a
signaling URL whose port is out of range are options mistakes: one line, exit 2.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openfrp.netcheck.probes import parse_server, probe_turn
from openfrp.settings import SessionSettings
from openfrp.terminal.preflight import probe_ice_servers
from tests.support.coturn import PASSWORD, USER, Coturn, free_port

OPENFRP = str(Path(sys.executable).with_name("openfrp"))
REFUSED = "refused (nothing listens on that port)"


def netcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENFRP, "netcheck", *args], capture_output=True, text=True, timeout=60)


def test_a_stopped_turn_servers_udp_port_is_refused_as_for_stun(coturn: Coturn) -> None:
    """The same closed port, once a real coturn's: both probes say refused, from the ICMP
    error a connected UDP socket gets (the TURN probe waited the full 5 s: "no answer")."""
    where = f"127.0.0.1:{coturn.port}"
    creds = ["--turn-user", USER, "--turn-password", PASSWORD]
    assert netcheck("--json", "--turn", f"turn:{where}", *creds).returncode == 0
    coturn.stop()
    done = netcheck("--json", "--stun", f"stun:{where}", "--turn", f"turn:{where}", *creds)
    assert done.returncode == 1 and done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    errors = {probe["kind"]: probe["error"] for probe in report["probes"]}
    assert errors == {"stun": REFUSED, "turn": REFUSED}
    assert report["code"] == 5019  # the STUN/TURN mapping is unchanged


def test_the_sessions_own_turn_probe_says_refused_on_a_closed_port() -> None:
    """The terminal's preflight runs the same probe under the session's turn_timeout."""
    port = free_port()
    block = {"ice_servers": [{"urls": [f"turn:127.0.0.1:{port}"], "username": USER,
                              "credential": PASSWORD}]}  # fmt: skip
    [result] = asyncio.run(probe_ice_servers(block, SessionSettings()))
    assert (result.kind, result.ok, result.detail) == ("turn", False, REFUSED)
    assert "no answer" not in result.detail
    direct = asyncio.run(probe_turn(parse_server("turn", f"turn:127.0.0.1:{port}"), "u", "p", 5))
    assert direct.detail == REFUSED


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--turn", "turn://127.0.0.1:3478"],
         "--turn 'turn://127.0.0.1:3478': write turn:HOST:PORT (no //)"),
        (["--stun", "stun://127.0.0.1:3478"],
         "--stun 'stun://127.0.0.1:3478': write stun:HOST:PORT (no //)"),
        (["--stun", "stun:h:1", "--stun-timeout", "nan"],
         "--stun-timeout nan: must be a finite number of seconds, more than 0"),
        (["--turn", "turn:h:1", "--turn-timeout", "inf"],
         "--turn-timeout inf: must be a finite number of seconds, more than 0"),
        (["--signaling", "ws://h:1/signal", "--signaling-timeout", "-1"],
         "--signaling-timeout -1: must be a finite number of seconds, more than 0"),
        (["--signaling", "ws://127.0.0.1:70000/signal"],
         "--signaling 'ws://127.0.0.1:70000/signal': expected ws://HOST:PORT/signal or wss://..."),
    ],
)  # fmt: skip
def test_options_mistakes_are_one_line_exit_2(args: list[str], line: str) -> None:
    done = netcheck(*args, "--turn-user", "u", "--turn-password", "p")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"openfrp netcheck: {line}"]


def test_a_log_that_cannot_be_written_is_refused_before_probing(tmp_path: Path) -> None:
    """An IsADirectoryError traceback after the probes had run."""
    done = netcheck("--stun", "stun:127.0.0.1:9", "--log", str(tmp_path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f"openfrp netcheck: --log {tmp_path}: cannot write there (Is a directory)"
    ]


def ticket(tmp_path: Path, urls: list[str]) -> Path:
    """A saved FRP8 ticket whose ICE servers are `urls` (no signaling hub to probe)."""
    block: dict[str, Any] = {
        "ice_servers": [{"urls": urls, "username": USER, "credential": PASSWORD}],
        "ice_policy": "relay",
    }
    path = tmp_path / "ticket.json"
    path.write_text(json.dumps({"session_id": "s-1", "token": "t", "config_digest": "d",
                                "config": {"frp": 8, "frp8": block}}))  # fmt: skip
    return path


def test_a_sessions_turn_url_of_another_form_is_a_failed_probe_not_all_clear(
    tmp_path: Path,
) -> None:
    """netcheck --link said "no STUN or TURN server ... every probe passed" (exit 0): the
    URL had been left out without a word, as the peers left it out."""
    done = netcheck("--link", str(ticket(tmp_path, ["turn://127.0.0.1:3478"])))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "TURN", "turn://127.0.0.1:3478", "FAILED", "not", "a", "TURN", "address:", "write",
        "turn:HOST:PORT", "(no", "//)",
    ]  # fmt: skip
    assert lines[1].startswith("verdict: [5010 TURN_UNREACHABLE]")
    assert "every probe passed" not in done.stdout and "no STUN or TURN" not in done.stdout


def test_a_sessions_turn_server_is_probed_with_its_own_credentials(
    coturn: Coturn, tmp_path: Path
) -> None:
    done = netcheck("--json", "--link", str(ticket(tmp_path, [f"TURN:127.0.0.1:{coturn.port}"])))
    assert done.returncode == 0, done.stdout + done.stderr
    [probe] = json.loads(done.stdout)["probes"]
    assert (probe["kind"], probe["server"], probe["ok"]) == (
        "turn",
        f"turn:127.0.0.1:{coturn.port}",
        True,
    )


def test_the_peers_take_the_urls_as_the_settings_parse_them() -> None:
    """aiortc read turn://h:3478 as the host name "//h" and raised on TURN:h or stun:[::1]."""
    from openfrp.rtc import aiortc_urls

    urls = ["turn://h:3478", "TURN:h", "turns:h?transport=tcp", "stun:[::1]:3478", "stun:s"]
    assert aiortc_urls(urls) == ["turn:h:3478", "turns:h:5349", "stun:s:3478"]
