"""What netcheck and the terminal's preflight say behind a firewall, against a real coturn.

A network namespace of the test's own, nft dropping UDP on the way in: with STUN, TURN over
UDP and TURN over TCP configured, the TCP relay still allocates, so the verdict is 5009 (the
connection may still work), never 5019 ("neither ... reached", use FRP7). With STUN alone and
no TURN at all, 5009 comes with the line that FRP8 then has no relay to go through. A turns:
server with a self-signed certificate names the certificate and what to do about it, not
Python's SSLCertVerificationError text.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp.events import read_events
from openfrp.netcheck.verdict import ProbeResult, verdict
from openfrp.settings import SessionSettings
from openfrp.terminal.preflight import probe_ice_servers
from tests.support.coturn import PASSWORD, TURNSERVER, USER, Coturn, free_port, start_coturn

OPENFRP = str(Path(sys.executable).with_name("openfrp"))
NS_TOOLS = all(shutil.which(tool) for tool in ("ip", "nft")) and TURNSERVER is not None
CREDS = ["--turn-user", USER, "--turn-password", PASSWORD]


def netcheck(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*(prefix or []), OPENFRP, "netcheck", *args], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_relay_over_tcp_that_answers_is_never_5019() -> None:
    stun = ProbeResult("stun", "s", False, detail="no answer in 1.0 s")
    turn_udp = ProbeResult("turn", "t", False, detail="no answer in 1.0 s")
    turn_tcp = ProbeResult("turn", "t?transport=tcp", True, rtt_ms=2.0)
    code, logs = verdict([stun, turn_udp, turn_tcp])
    assert code == 5009
    assert "probe.failed" not in [log.event for log in logs]
    assert [log.code for log in logs] == [5009, 5010, None]  # each probe keeps its own code
    stun_ok = ProbeResult("stun", "s2", True, rtt_ms=1.0)
    assert verdict([stun, stun_ok, turn_udp])[0] == 5010  # every relay out, a STUN answers
    assert verdict([stun, turn_udp])[0] == 5019  # nothing answers at all


@pytest.fixture
def namespace() -> Iterator[list[str]]:
    ns = f"ofrp-nv-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        prefix = ["ip", "netns", "exec", ns]
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
        yield prefix
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.skipif(not NS_TOOLS or os.geteuid() != 0, reason="needs root, iproute2, nft, coturn")
def test_udp_dropped_with_a_tcp_relay_is_5009_and_stun_alone_says_no_relay(
    namespace: list[str], tmp_path: Path
) -> None:
    server: Coturn | None = None
    try:
        server = start_coturn(tmp_path, prefix=namespace)
        where = f"127.0.0.1:{server.port}"
        rules = (
            "table inet openfrp_test {\n  chain c {\n"
            "    type filter hook input priority 0;\n"
            f"    udp dport {server.port} drop\n  }}\n}}\n"
        )
        subprocess.run([*namespace, "nft", "-f", "-"], input=rules, text=True, check=True)
        log = tmp_path / "events.jsonl"
        done = netcheck(
            "--json", "--stun", f"stun:{where}", "--turn", f"turn:{where}",
            "--turn", f"turn:{where}?transport=tcp", *CREDS, "--stun-timeout", "1",
            "--turn-timeout", "1", "--log", str(log), prefix=namespace,
        )  # fmt: skip
        report = json.loads(done.stdout)
        assert (done.returncode, report["code"]) == (1, 5009), report
        oks = [(p["server"], p["ok"]) for p in report["probes"]]
        assert oks == [
            (f"stun:{where}", False),
            (f"turn:{where}", False),
            (f"turn:{where}?transport=tcp", True),
        ]
        assert "no_relay" not in report
        assert [(e.event, e.code) for e in read_events(log)] == [
            ("probe.stun", 5009),
            ("probe.turn", 5010),
            ("probe.turn", None),
        ]

        done = netcheck("--stun", f"stun:{where}", "--stun-timeout", "1", prefix=namespace)
        lines = done.stdout.splitlines()
        assert done.returncode == 1 and lines[0].split()[2:] == ["FAILED", "no", "answer", "in",
                                                                 "1.0", "s"]  # fmt: skip
        assert lines[1].split()[:3] == ["TURN", "no", "TURN"]
        assert "no relay" in lines[1] and "server.turn_url" in lines[1] and "FRP7" in lines[1]
        assert lines[2].startswith("verdict: [5009 STUN_UNREACHABLE]")
        done = netcheck("--json", "--stun", f"stun:{where}", "--stun-timeout", "1",
                        prefix=namespace)  # fmt: skip
        assert json.loads(done.stdout)["no_relay"] is True
    finally:
        if server is not None:
            server.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_coturn(tmp_path: Path) -> Iterator[int]:
    """coturn whose TLS port serves a self-signed certificate; yields that port."""
    assert TURNSERVER is not None
    cert, key = _self_signed(tmp_path)
    port, tls_port, relay = free_port(), free_port(), free_port()
    argv = [
        TURNSERVER, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
        f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}",
        "--relay-ip=127.0.0.1", f"--min-port={relay}", f"--max-port={relay + 20}",
        "--lt-cred-mech", f"--user={USER}:{PASSWORD}", "--realm=openfrp.test", "--no-dtls",
        "--no-cli", "--log-file=stdout", "--simple-log", f"--pidfile={tmp_path / 'turn.pid'}",
    ]  # fmt: skip
    with (tmp_path / "turnserver.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out)
    coturn = Coturn(process, tls_port)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "turnserver.log").read_text()
            probe = f"import socket; socket.create_connection(('127.0.0.1', {tls_port}), 1)"
            if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield tls_port
    finally:
        coturn.stop()


@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn")
def test_a_turns_server_with_a_self_signed_certificate_is_named_as_such(
    tls_coturn: int, tmp_path: Path
) -> None:
    url = f"turns:127.0.0.1:{tls_coturn}"
    expected = (
        "the TLS certificate of 127.0.0.1 is not accepted (self-signed certificate): give the "
        "server a certificate for 127.0.0.1 from a CA this machine trusts"
    )
    log = tmp_path / "events.jsonl"
    done = netcheck("--json", "--turn", url, *CREDS, "--log", str(log))
    report: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode, report["code"]) == (1, 5010), report
    [probe] = report["probes"]
    assert probe["error"] == expected
    [event] = read_events(log)
    assert (event.event, event.code, event.attrs["error"]) == ("probe.turn", 5010, expected)
    # the terminal's own preflight says the same
    block = {"ice_servers": [{"urls": [url], "username": USER, "credential": PASSWORD}]}
    [result] = asyncio.run(probe_ice_servers(block, SessionSettings()))
    assert (result.ok, result.detail) == (False, expected)
