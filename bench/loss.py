"""The FRP8 stream under packet loss: fps, the longest stall, Mbit/s and latency per loss rate.

The browser terminal (headless Chromium) joins an FRP8 session whose media a real coturn
relays; coturn runs in a network namespace of this run's own, joined by a veth pair, where
nft drops a share of the UDP datagrams coming in (numgen): each direction of the path loses
that share once, the video track (RTP, NACK and keyframe requests) and the palette tiles on
the data channel (SCTP, retransmitted) alike. Loss rates run one after another on the same
session; the figures are bench/video.py's, plus the codes the server's event log holds for
the session (a lossy path that still gives a usable desktop holds none).

    bench/loss.py [--loss 0 2 5] [--workloads scrolling motion] [--seconds 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rig import CHROMIUM, Flipper, have
from bench.systems import Group, openfrp_frp8
from bench.video import measure
from tests.e2e.browser import ARGS
from tests.support.coturn import TURNSERVER, start_coturn
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
    group = Group(root / "frp8")
    group.root.mkdir()
    group.items["turn"] = turn
    flipper = None
    try:
        stack = openfrp_frp8(group, SIZE, browser)
        flipper = Flipper(stack.display, stack.size, stack.xauthority)
        log = group.items["server"].log
        for loss in args.loss:
            namespace.drop_share(loss)
            for workload in args.workloads:
                seen = len(log.events())
                before = stack.page.evaluate(RECEIVER_JS)
                row = {"system": "openfrp-frp8", "loss_pct": loss, "workload": workload}
                row |= measure([stack], flipper, workload, args.seconds, args.trials)
                after = stack.page.evaluate(RECEIVER_JS)
                row |= {k: round(after[k] - before.get(k, 0), 3) for k in after}
                row["codes"] = sorted(
                    {e["code"] for e in log.events()[seen:] if e.get("code") is not None}
                )
                emit(row, args.json)
    finally:
        namespace.drop_share(0)
        if flipper is not None:
            flipper.close()
        group.close()


def emit(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    print(
        f"loss {row['loss_pct']:4.1f} %  {row['workload']:<10} {row['fps']:5.1f} fps  "
        f"stall {row['stall_ms'] or 0:5d} ms  {row['mbit_s']:6.2f} Mbit/s  "
        f"p50 {row['latency_ms_p50']} ms  p90 {row['latency_ms_p90']} ms  "
        f"codes {row['codes'] or '-'}  video: {row.get('packetsLost')} lost, "
        f"{row.get('nackCount')} NACK, {row.get('pliCount')} PLI, "
        f"{row.get('keyFramesDecoded')} keyframes, {row.get('freezeCount')} freezes "
        f"({row.get('totalFreezesDuration')} s)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
