"""FRP8 against FRP7 on one machine: time to connect, and how fast a lost path is reported.

Server, terminal and coturn run as separate processes on loopback, as in the end-to-end
tests; FRP8 goes relay-only through coturn. Each trial measures, in the same run:
  - time to connect (the terminal's connect.attempt to connection.established) over FRP7,
    the baseline, and over FRP8 (signaling, offer/answer, ICE, DTLS, SCTP, hello);
  - the relay stopped mid-session: time to 4108 (the configured ice_disconnected_after is the
    baseline), and, once coturn is back, time to the resume.
Then, in this process, two bare aiortc peers through coturn lose their relay the same way:
aiortc's own connection state is watched for as long as the budget allows, which is what a
session would wait for without openfrp's data-channel heartbeat.

    .venv/bin/python bench/frp8_timing.py [--trials N] [--aiortc-budget SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openfrp.events import parse_ts
from openfrp.rtc import configuration
from tests.e2e.harness import ServerProcess, TerminalProcess
from tests.support.coturn import PASSWORD, USER, Coturn, start_coturn

RTC = {
    "frp": 8,
    "ice_disconnected_after": 2.0,
    "reconnect_backoff_initial": 0.3,
    "reconnect_backoff_max": 1.0,
    "reconnect_attempts": 20,
    "reconnect_window": 60.0,
    "idle_timeout": 60.0,
}


def connect_ms(server: ServerProcess, launchpad: str, log: Path) -> float:
    ticket = server.launch("bench", launchpad)
    term = TerminalProcess.start(ticket["connect_url"], log)
    try:
        done = term.log.wait_event(event="connection.established", timeout=20)
        return float(done["attrs"]["time_to_connect_ms"])
    finally:
        term.send("close")
        term.wait_exit(10)


def trial(root: Path) -> tuple[float, float, float, float]:
    turn = start_coturn(root)
    block = {
        "turn_url": f"turn:127.0.0.1:{turn.port}?transport=udp",
        "turn_user": USER,
        "turn_password": PASSWORD,
        "ice_policy": "relay",
    }
    server = ServerProcess.start(root / "server", launchpads={"rtc": RTC}, server=block)
    back: Coturn | None = None
    try:
        frp7 = connect_ms(server, "desktop", root / "frp7.jsonl")
        frp8 = connect_ms(server, "rtc", root / "frp8.jsonl")
        ticket = server.launch("bench", "rtc")
        term = TerminalProcess.start(ticket["connect_url"], root / "loss.jsonl")
        try:
            term.wait_line(r"connected to ", timeout=20)
            time.sleep(1.0)
            cut_at = datetime.now(UTC).timestamp()
            turn.stop()
            lost = term.log.wait_event(event="ice.disconnected", timeout=30)
            (root / "again").mkdir()
            restart_at = datetime.now(UTC).timestamp()
            back = start_coturn(root / "again", port=turn.port)
            resumed = term.log.wait_event(event="reconnect.succeeded", timeout=60)
            return (
                frp7,
                frp8,
                parse_ts(str(lost["ts"])).timestamp() - cut_at,
                parse_ts(str(resumed["ts"])).timestamp() - restart_at,
            )
        finally:
            term.stop()
    finally:
        server.stop()
        turn.stop()
        if back is not None:
            back.stop()


async def bare_aiortc(root: Path, budget: float) -> tuple[float | None, str]:
    """Seconds until aiortc's own state leaves `connected` after the relay dies (None: never,
    within `budget`), and the state it was in at the end."""
    from aiortc import RTCPeerConnection

    turn = start_coturn(root)
    url = f"turn:127.0.0.1:{turn.port}?transport=udp"
    block = {"ice_servers": [{"urls": [url], "username": USER, "credential": PASSWORD}]}
    config = configuration({**block, "ice_policy": "relay"})
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        opened = asyncio.get_running_loop().create_future()
        channel = a.createDataChannel("control")
        channel.on("open", lambda: opened.set_result(True))
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(opened, 20)
        turn.stop()
        began = time.monotonic()
        while time.monotonic() - began < budget:
            if a.connectionState != "connected":
                return time.monotonic() - began, a.connectionState
            await asyncio.sleep(0.1)
        return None, a.connectionState
    finally:
        await a.close()
        await b.close()
        turn.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--aiortc-budget", type=float, default=40.0)
    args = parser.parse_args()
    rows = []
    for i in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(trial(Path(tmp)))
        frp7, frp8, lost, resumed = rows[-1]
        print(
            f"trial {i + 1}: connect FRP7 {frp7:.0f} ms, FRP8 {frp8:.0f} ms; relay stopped -> "
            f"4108 after {lost:.2f} s; relay back -> resumed after {resumed:.2f} s",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        bare, state = asyncio.run(bare_aiortc(Path(tmp), args.aiortc_budget))
    f7 = statistics.median(r[0] for r in rows)
    f8 = statistics.median(r[1] for r in rows)
    lost = statistics.median(r[2] for r in rows)
    resumed = statistics.median(r[3] for r in rows)
    configured = RTC["ice_disconnected_after"]
    print(f"\nconnect, median: FRP7 {f7:.0f} ms, FRP8 {f8:.0f} ms (FRP8/FRP7 {f8 / f7:.1f}x)")
    print(f"relay stopped -> 4108, median {lost:.2f} s (ice_disconnected_after {configured} s)")
    print(f"relay back -> resumed, median {resumed:.2f} s")
    if bare is None:
        print(f"bare aiortc: still '{state}' {args.aiortc_budget:.0f} s after the relay died")
    else:
        print(f"bare aiortc: '{state}' {bare:.1f} s after the relay died")
    return 0


if __name__ == "__main__":
    sys.exit(main())
