"""How many heartbeat-only sessions one openfrp server process holds with p99 RTT < 50 ms.

Each step starts a fresh server process, launches N sessions, opens N FRP7 connections from
this process and has each send one ping a second for a fixed window, timing ping -> pong.
The baseline is a bare `websockets` echo server in its own process driven the same way; the
ratio of the two capacities is the figure to watch. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
OPENFRP = [sys.executable, "-m", "openfrp.cli"]
P99_GOAL_MS = 50.0

ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def _post(url: str, key: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def start_openfrp(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    config = tmp / "bench.toml"
    config.write_text(
        f'[server]\nport = 0\nvideo_fps = 0\ndata_dir = "{tmp}"\n'
        f'registry = "{tmp}/registry.sqlite3"\n'
        "max_live_sessions = 100000\nmax_launches_per_minute = 100000\n"
        "max_connections_per_address = 100000\n"
        f'log_dir = "{tmp}/logs"\n[account]\nheartbeat_interval = 1.0\n'
        "receive_timeout = 60.0\nidle_timeout = 600.0\n"
    )
    ready = tmp / "ready"
    proc = subprocess.Popen(
        [*OPENFRP, "serve", "--config", str(config), "--ready-file", str(ready)], cwd=tmp
    )
    for _ in range(200):
        if ready.exists() and len(ready.read_text().splitlines()) == 2:
            url, key = ready.read_text().splitlines()
            return proc, url, key
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("openfrp server did not start")


def start_echo() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"ws://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def _session_client(
    ws: ClientConnection, openfrp: bool, seconds: float, rtts: list[float]
) -> None:
    await asyncio.sleep(random.random())
    end = time.monotonic() + seconds
    ping_id = 0
    while time.monotonic() < end:
        ping_id += 1
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "ping", "id": ping_id}))
        for _ in range(20):
            reply = json.loads(await ws.recv())
            if not openfrp or (reply.get("type") == "pong" and reply.get("id") == ping_id):
                break
        rtts.append((time.perf_counter() - sent) * 1000)
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - sent)))


async def _open(
    i: int, openfrp: bool, url: str, key: str, gate: asyncio.Semaphore
) -> ClientConnection:
    async with gate:
        ws = await connect(
            url if not openfrp else url.replace("http", "ws", 1) + "/frp7",
            compression=None,
            ping_interval=None,
            open_timeout=30,
        )
        if openfrp:
            t = await asyncio.to_thread(
                _post, f"{url}/api/sessions", key, {"user": f"u{i}", "launchpad": "desktop"}
            )
            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "version": 1,
                        "session_id": t["session_id"],
                        "token": t["token"],
                        "config": t["config"],
                        "config_digest": t["config_digest"],
                        "client": "bench",
                    }
                )
            )
            for _ in range(5):
                if json.loads(await ws.recv())["type"] == "started":
                    break
        return ws


async def run_step(n: int, openfrp: bool, url: str, key: str, seconds: float) -> list[float]:
    gate = asyncio.Semaphore(32)
    opened = await asyncio.gather(
        *(_open(i, openfrp, url, key, gate) for i in range(n)), return_exceptions=True
    )
    sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
    try:
        if len(sockets) != n:
            raise RuntimeError(f"only {len(sockets)} of {n} connections opened")
        rtts: list[float] = []
        await asyncio.gather(*(_session_client(ws, openfrp, seconds, rtts) for ws in sockets))
        return rtts
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="100,250,500,1000,1500")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    results: dict[str, int] = {}
    print(f"{'server':<10} {'sessions':>8} {'p50 ms':>8} {'p99 ms':>8} {'pings':>7}")
    for name in ("websockets", "openfrp"):
        best = 0
        for n in steps:
            with tempfile.TemporaryDirectory() as tmp:
                if name == "openfrp":
                    proc, url, key = start_openfrp(Path(tmp))
                else:
                    proc, url = start_echo()
                    key = ""
                try:
                    rtts = asyncio.run(run_step(n, name == "openfrp", url, key, args.seconds))
                finally:
                    stop(proc)
            p50, p99 = statistics.median(rtts), percentile(rtts, 0.99)
            print(f"{name:<10} {n:>8} {p50:>8.2f} {p99:>8.2f} {len(rtts):>7}", flush=True)
            if p99 >= P99_GOAL_MS:
                break
            best = n
        results[name] = best
    ratio = results["openfrp"] / results["websockets"] if results["websockets"] else 0.0
    print(
        f"\ncapacity at p99 < {P99_GOAL_MS:.0f} ms: openfrp {results['openfrp']} sessions, "
        f"bare websockets echo {results['websockets']} connections, ratio {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
