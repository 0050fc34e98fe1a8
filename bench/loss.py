"""The stream under packet loss: fps, the longest stall, Mbit/s and latency per loss rate.

The browser terminal (headless Chromium) joins a session across a network namespace of this
run's own, joined by a veth pair, where nft drops a share of the packets coming in (numgen):
each direction of the path loses that share once.
- FRP8: the session's media go through a real coturn running in the namespace; the UDP
  datagrams are dropped, the video track (RTP, NACK and keyframe requests) and the palette
  tiles on the data channel (SCTP, retransmitted) alike.
- FRP7: the WebSocket runs through a relay in the namespace (the page, a byte-counting relay
  on loopback, the relay inside, one back on this side of the veth, the server); its TCP
  segments are dropped, and TCP retransmits them (the figures add how many segments the
  path's senders sent again).
Loss rates run one after another on the same session; the figures are bench/video.py's, plus
the codes the server's event log holds for the session (a lossy path that still gives a
usable desktop holds none).

    bench/loss.py [--systems frp8 frp7] [--loss 0 2 5] [--workloads scrolling motion]
                  [--seconds 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rig import CHROMIUM, Flipper, have
from bench.systems import Group, Stack, openfrp_browser, openfrp_frp8
from bench.video import measure
from tests.e2e.browser import ARGS
from tests.support.coturn import TURNSERVER, start_coturn
from tests.support.faultproxy import start_route_through
from tests.support.netns import Namespace

SIZE = (1280, 720)
# The page's video receiver: what it asked again and how long its picture froze.
RECEIVER_JS = """async () => {
  const found = {};
  for (const pc of window.__bench.pcs) {
    for (const r of (await pc.getStats()).values()) {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        for (const k of ["nackCount", "pliCount", "keyFramesDecoded", "freezeCount",
                         "totalFreezesDuration", "packetsLost"]) found[k] = r[k] || 0;
      }
    }
  }
  return found;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", choices=("frp8", "frp7"), default=["frp8", "frp7"])
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 2.0, 5.0], help="%%")
    parser.add_argument("--workloads", nargs="+", default=["scrolling", "motion"])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--trials", type=int, default=8, help="colour flips per latency figure")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    missing = have("Xvfb", "xterm", "ffplay", "ip", "nft")
    if missing or TURNSERVER is None or not CHROMIUM.exists() or os.geteuid() != 0:
        print(
            "skipped: needs root, ip, nft, coturn, Xvfb, xterm, ffplay, Chromium", file=sys.stderr
        )
        return 0
    if any(not 0 <= loss < 100 for loss in args.loss):
        parser.error("--loss: each rate is a percentage from 0 to below 100")
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="openfrp-loss-"))
    try:
        with Namespace() as namespace:
            (root / "turn").mkdir()
            turn = start_coturn(root / "turn", prefix=namespace.prefix, host=namespace.ns_ip)
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                    try:
                        run(args, namespace, turn, root, browser)
                    finally:
                        browser.close()
            finally:
                turn.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def run(
    args: argparse.Namespace, namespace: Namespace, turn: Any, root: Path, browser: Any
) -> None:
    for system in args.systems:
        group = Group(root / system)
        group.root.mkdir()
        group.items["turn"] = turn
        flipper = None
        try:
            if system == "frp8":
                stack = openfrp_frp8(group, SIZE, browser)
            else:
                stack = openfrp_browser(group, SIZE, browser, partial(route, group, namespace))
            group.closers.append(stack.close)
            flipper = Flipper(stack.display, stack.size, stack.xauthority)
            for loss in args.loss:
                namespace.drop_share(loss, "udp" if system == "frp8" else "tcp")
                for workload in args.workloads:
                    emit(
                        measured(args, system, loss, workload, stack, flipper, group, namespace),
                        args.json,
                    )
        finally:
            namespace.drop_share(0)
            if flipper is not None:
                flipper.close()
            group.close()


def route(group: Group, namespace: Namespace, port: int) -> tuple[str, int]:
    """Relays from inside the namespace (where nft drops) to the server at `port` on
    loopback; where the path starts."""
    relays = start_route_through(namespace, port)
    group.closers.extend(relay.stop for relay in relays)
    return namespace.ns_ip, relays[0].port


def measured(
    args: argparse.Namespace,
    system: str,
    loss: float,
    workload: str,
    stack: Stack,
    flipper: Flipper,
    group: Group,
    namespace: Namespace,
) -> dict[str, Any]:
    """One workload at one loss rate: bench/video.py's figures, what the path did about the
    loss (FRP8: the page's video receiver; FRP7: TCP's retransmissions) and the codes logged."""
    log = group.items["server"].log
    seen = len(log.events())
    count = (
        (lambda: stack.page.evaluate(RECEIVER_JS))
        if system == "frp8"
        else lambda: {"retransmitted": namespace.retransmitted()}
    )
    before = count()
    row = {"system": f"openfrp-{system}", "loss_pct": loss, "workload": workload}
    row |= measure([stack], flipper, workload, args.seconds, args.trials)
    after = count()
    row |= {k: round(after[k] - before.get(k, 0), 3) for k in after}
    row["codes"] = sorted({e["code"] for e in log.events()[seen:] if e.get("code") is not None})
    return row


def emit(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    print(
        f"loss {row['loss_pct']:4.1f} %  {row['workload']:<10} {row['fps']:5.1f} fps  "
        f"stall {row['stall_ms'] or 0:5d} ms  {row['mbit_s']:6.2f} Mbit/s  "
        f"p50 {row['latency_ms_p50']} ms  p90 {row['latency_ms_p90']} ms  "
        f"codes {row['codes'] or '-'}  "
        + (
            f"video: {row.get('packetsLost')} lost, {row.get('nackCount')} NACK, "
            f"{row.get('pliCount')} PLI, {row.get('keyFramesDecoded')} keyframes, "
            f"{row.get('freezeCount')} freezes ({row.get('totalFreezesDuration')} s)"
            if row["system"] == "openfrp-frp8"
            else f"TCP: {row.get('retransmitted')} segments sent again"
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
