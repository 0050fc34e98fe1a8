"""A real coturn (Debian package coturn) on loopback, or inside a network namespace a test made.

Relay ports come from the loopback too, and loopback peers are allowed: that is how two
WebRTC peers on one machine reach each other through the relay (aioice skips loopback host
candidates)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TURNSERVER = shutil.which("turnserver")
USER, PASSWORD = "alice", "s3cret"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))  # the UDP port must be free too
    return port


@dataclass
class Coturn:
    process: subprocess.Popen[bytes]
    port: int
    host: str = "127.0.0.1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_coturn(
    workdir: Path,
    prefix: list[str] | None = None,
    port: int | None = None,
    loopback_peers: bool = True,
    host: str = "127.0.0.1",
) -> Coturn:
    """turnserver on `host` (127.0.0.1) with one long-term user; returns once it accepts TCP.

    `port` restarts one on a known port; `loopback_peers=False` keeps coturn's default of
    refusing to relay to loopback peers, so peers on this machine cannot reach each other;
    `host`: the address it listens and relays on (a namespace's own, with `prefix`)."""
    assert TURNSERVER is not None
    port = port or free_port()
    relay = free_port()
    argv = [
        TURNSERVER, "-n", f"--listening-ip={host}", f"--listening-port={port}",
        f"--relay-ip={host}", f"--min-port={relay}", f"--max-port={relay + 20}",
        "--lt-cred-mech", f"--user={USER}:{PASSWORD}", "--realm=openfrp.test",
        "--no-tls", "--no-dtls", "--no-cli",
        *(["--allow-loopback-peers"] if loopback_peers else []),
        "--log-file=stdout", "--simple-log", f"--pidfile={workdir / 'turnserver.pid'}",
    ]  # fmt: skip
    with (workdir / "turnserver.log").open("wb") as out:
        process = subprocess.Popen([*(prefix or []), *argv], stdout=out, stderr=out)
    coturn = Coturn(process, port, host)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((workdir / "turnserver.log").read_text(errors="replace")[-2000:])
        probe = [*(prefix or []), "python3", "-c",
                 f"import socket; socket.create_connection(('{host}', {port}), 1)"]  # fmt: skip
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return coturn
        time.sleep(0.1)
    coturn.stop()
    raise RuntimeError("turnserver did not start listening within 10 s")
