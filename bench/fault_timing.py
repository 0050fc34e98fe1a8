"""Time from a black-holed path to 4102 (terminal) and 4023 (server), and time to resume.

Server, fault proxy and terminal run as separate processes on loopback, exactly as in the
end-to-end tests. Each trial black-holes the path, reads when each side logged its code,
restores the path and reads when the terminal resumed. The configured timeouts are the
baseline the measured times are compared with.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openfrp.events import parse_ts
from tests.e2e.harness import ServerProcess, TerminalProcess
from tests.support.faultproxy import start_proxy_process

TIMERS = {
    "heartbeat_interval": 1.0,
    "keepalive_timeout": 3.0,
    "receive_timeout": 2.0,
    "max_receive_timeouts": 2,
    "connect_timeout": 2.0,
    "reconnect_attempts": 20,
    "reconnect_window": 60.0,
    "reconnect_backoff_initial": 0.5,
    "reconnect_backoff_max": 2.0,
    "idle_timeout": 60.0,
}


def trial(root: Path) -> tuple[float, float, float]:
    server = ServerProcess.start(root, account=TIMERS)
    proxy = start_proxy_process(server.port)
    try:
        ticket = server.launch("bench", "desktop")
        sid = ticket["session_id"]
        term = TerminalProcess.start(
            ticket["connect_url"],
            root / "terminal.jsonl",
            ws_url=f"ws://127.0.0.1:{proxy.port}/frp7",
        )
        try:
            term.wait_line(r"connected to ", timeout=10)
            time.sleep(1.5)
            cut_at = datetime.now(UTC).timestamp()
            proxy.control("blackhole")
            lost = term.log.wait_event(timeout=30, event="connection.lost", code=4102)
            closed = server.log.wait_event(
                timeout=30, event="connection.closed", code=4023, session_id=sid
            )
            restore_at = datetime.now(UTC).timestamp()
            proxy.control("restore")
            resumed = term.log.wait_event(timeout=30, event="reconnect.succeeded")
            return (
                parse_ts(str(lost["ts"])).timestamp() - cut_at,
                parse_ts(str(closed["ts"])).timestamp() - cut_at,
                parse_ts(str(resumed["ts"])).timestamp() - restore_at,
            )
        finally:
            term.stop()
    finally:
        proxy.stop()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for i in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(trial(Path(tmp)))
        print(
            f"trial {i + 1}: 4102 after {rows[-1][0]:.2f} s, 4023 after {rows[-1][1]:.2f} s, "
            f"resumed {rows[-1][2]:.2f} s after restore",
            flush=True,
        )
    keepalive = TIMERS["keepalive_timeout"]
    receive = TIMERS["receive_timeout"] * TIMERS["max_receive_timeouts"]
    worst_resume = TIMERS["connect_timeout"] + TIMERS["reconnect_backoff_max"]
    print(f"\n{'what':<32} {'configured':>10} {'median':>8} {'max':>8} {'ratio':>6}")
    for name, configured, values in (
        ("black-hole -> terminal 4102", keepalive, [r[0] for r in rows]),
        ("black-hole -> server 4023", receive, [r[1] for r in rows]),
        ("restore -> resumed (worst case)", worst_resume, [r[2] for r in rows]),
    ):
        median = statistics.median(values)
        print(
            f"{name:<32} {configured:>9.2f}s {median:>7.2f}s {max(values):>7.2f}s "
            f"{median / configured:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
