"""`openfrp netcheck`: probe the STUN and TURN servers and say what the result means.

The preflight an operator runs from the user's network (or a support engineer asks the user to
run): every probe with its round trip or the reason it failed, then the verdict code with its
message and next step, in words or as JSON; the probe events go to an event log on request.
Exit status: 0 when every probe passed, 1 when a code applies, 2 for a mistake in the options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from openfrp import codes
from openfrp.settings import SessionSettings

EXIT_CODE = 1
EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"openfrp netcheck: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_netcheck(args: argparse.Namespace) -> int:
    from openfrp.events import Event, EventLog
    from openfrp.netcheck.probes import parse_server, probe_stun, probe_turn
    from openfrp.netcheck.verdict import ProbeResult, verdict

    if not args.stun and not args.turn:
        return _fail("name at least one --stun or --turn server")
    try:
        stuns = [parse_server("stun", text) for text in args.stun]
        turns = [parse_server("turn", text) for text in args.turn]
    except ValueError as exc:
        return _fail(str(exc))
    if turns and (args.turn_user is None or args.turn_password is None):
        return _fail("--turn needs --turn-user and --turn-password")
    for name in ("stun_timeout", "turn_timeout"):
        if getattr(args, name) <= 0:
            return _fail(f"--{name.replace('_', '-')} must be more than 0 seconds")

    async def run() -> list[ProbeResult]:
        probes = [probe_stun(s, args.stun_timeout) for s in stuns]
        probes += [
            probe_turn(t, args.turn_user, args.turn_password, args.turn_timeout) for t in turns
        ]
        return list(await asyncio.gather(*probes))

    results = asyncio.run(run())
    code, logs = verdict(results)
    if args.log:
        log = EventLog(args.log)
        for item in logs:
            log.write(
                Event(
                    event=item.event,
                    source="terminal",
                    session_id=args.session,  # None: a check of its own, in no session
                    frp=8,
                    code=item.code,
                    severity=item.severity or "info",
                    message=codes.get(item.code).message if item.code is not None else None,
                    attrs=item.attrs,
                )
            )
        log.close()
    report: dict[str, Any] = {
        "probes": [
            {
                "kind": r.kind,
                "server": r.server,
                "ok": r.ok,
                "rtt_ms": r.rtt_ms,
                "error": r.detail or None,
                **r.attrs,
            }
            for r in results
        ],
        "code": code,
    }
    if code is not None:
        row = codes.get(code)
        report.update(name=row.name, message=row.message, action=row.action)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(results, report)
    return EXIT_CODE if code is not None else 0


def _print(results: list[Any], report: dict[str, Any]) -> None:
    for r in results:
        if r.ok:
            where = r.attrs.get("mapped") or r.attrs.get("relayed")
            label = "you appear as" if r.kind == "stun" else "relay at"
            print(f"{r.kind.upper():4} {r.server:32} ok      {r.rtt_ms:7.1f} ms  {label} {where}")
        else:
            print(f"{r.kind.upper():4} {r.server:32} FAILED  {r.detail}")
    if report["code"] is None:
        print("verdict: the network helpers answer; FRP8 (WebRTC) can connect from here")
    else:
        print(f"verdict: [{report['code']} {report['name']}] {report['message']}")
        print(f"next step: {report['action']}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = SessionSettings()
    p = sub.add_parser(
        "netcheck",
        help="probe STUN/TURN servers: 5009, 5010, 5019 and why",
        description="Probe STUN (Binding) and TURN (Allocate) servers the way FRP8 uses them "
        "and explain the result.",
    )
    p.add_argument("--stun", action="append", default=[], metavar="stun:HOST:PORT")
    p.add_argument("--turn", action="append", default=[], metavar="turn:HOST:PORT[?transport=tcp]")
    p.add_argument("--turn-user", metavar="USER")
    p.add_argument("--turn-password", metavar="PASSWORD")
    p.add_argument("--stun-timeout", type=float, default=defaults.stun_timeout, metavar="S")
    p.add_argument("--turn-timeout", type=float, default=defaults.turn_timeout, metavar="S")
    p.add_argument("--log", metavar="FILE", help="append the probe events to this event log")
    p.add_argument("--session", metavar="ID", help="the session the check is for (in the log)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(handler=_cmd_netcheck)
