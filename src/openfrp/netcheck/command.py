"""`openfrp netcheck`: probe the STUN, TURN and signaling servers and say what it means.

The preflight an operator runs from the user's network (or a support engineer asks the user to
run): every probe with its round trip or the reason it failed, then the verdict code with its
message and next step, in words or as JSON; the probe events go to an event log on request.
`--link` takes a session's connect link (or saved ticket) and probes exactly what that session
would use: for FRP8 its ICE servers and its server peer at signaling, for FRP7 whether its
WebSocket opens from here (a proxy or front end that does not pass the upgrade is the usual
culprit). A link whose server is not reached or refuses it (the session has ended, the token
is expired or revoked) is a finding too, with the code the terminal would end with.
Exit status: 0 when every probe passed, 1 when a code applies, 2 for a mistake in the options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

from openfrp import codes
from openfrp.api_client import ApiCallError
from openfrp.rtc import Server, parse_server
from openfrp.settings import SessionSettings, SettingsError

if TYPE_CHECKING:
    from openfrp.netcheck.verdict import ProbeResult

EXIT_CODE = 1
EXIT_USAGE = 2


# A session whose launchpad names no ICE server: its peers can meet only where each reaches
# the other's own address (5006 across NAT or a firewall).
DIRECT_ONLY = (
    "the session's peers meet only on a direct path (no NAT or firewall between them); "
    "set server.stun_url and server.turn_url for people behind them"
)


def _fail(message: str) -> int:
    print(f"openfrp netcheck: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_netcheck(args: argparse.Namespace) -> int:
    from openfrp.events import Event, EventLog
    from openfrp.netcheck.probes import probe_frp7, probe_signaling, probe_stun, probe_turn
    from openfrp.netcheck.verdict import no_relay, verdict

    join: dict[str, Any] | None = None
    refused: ProbeResult | None = None
    problem = _timeouts_problem(args)
    if problem:
        return _fail(problem)
    if args.link:
        try:
            join = _from_session(args)
        except ApiCallError as exc:  # what the link's server said (or that none answered)
            refused = _link_refused(args.link, exc)
        except SettingsError as exc:  # not a link nor a ticket file
            return _fail(str(exc))
    if not (args.stun or args.turn or args.signaling or args.frp7 or args.ice or refused):
        return _fail("name at least one --stun, --turn or --signaling server, or --link")
    try:
        ice = _servers(args) + args.ice
    except ValueError as exc:
        return _fail(str(exc))
    if args.signaling and _ws_problem(args.signaling):
        return _fail(f"--signaling {args.signaling!r}: {_ws_problem(args.signaling)}")
    if args.signaling_timeout is None:
        args.signaling_timeout = SessionSettings().signaling_peer_timeout
    log = None
    if args.log:
        try:
            log = EventLog(args.log)
        except OSError as exc:
            return _fail(f"--log {args.log}: cannot write there ({exc.strerror or exc})")

    async def run() -> list[ProbeResult]:
        probes = [
            probe_stun(server, args.stun_timeout)
            if server.kind == "stun"
            else probe_turn(server, user, password, args.turn_timeout)
            for server, user, password in sorted(ice, key=lambda entry: entry[0].kind)
        ]
        if args.signaling:
            probes.append(probe_signaling(args.signaling, join, args.signaling_timeout))
        if args.frp7:
            waited = args.frp7_timeout or SessionSettings().connect_timeout
            probes.append(probe_frp7(args.frp7, waited))
        return [*([refused] if refused else []), *await asyncio.gather(*probes)]

    results = asyncio.run(run())
    code, logs = verdict(results)
    if log is not None:
        for item in logs:
            log.write(
                Event(
                    event=item.event,
                    source="terminal",
                    session_id=args.session,  # None: a check of its own, in no session
                    frp=7 if args.frp7 else 8 if ice or args.signaling else None,
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
    if args.direct_only:
        report["direct_only"] = True
    if no_relay(results):
        report["no_relay"] = True
    if code is not None:
        row = codes.get(code)
        report.update(name=row.name, message=row.message, action=row.action)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(results, report)
    return EXIT_CODE if code is not None else 0


def _timeouts_problem(args: argparse.Namespace) -> str | None:
    """A timeout that is no finite number of seconds above 0: NaN never ends a wait, nor
    does inf."""
    for name in ("stun_timeout", "turn_timeout", "signaling_timeout"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            flag = name.replace("_", "-")
            return f"--{flag} {value:g}: must be a finite number of seconds, more than 0"
    return None


def _servers(args: argparse.Namespace) -> list[tuple[Server, str, str]]:
    """The --stun and --turn servers with the credentials to present; ValueError names the
    option and the form to write."""
    found: list[Server] = []
    for kind, texts in (("stun", args.stun), ("turn", args.turn)):
        for text in texts:
            try:
                found.append(parse_server(kind, text))
            except ValueError as exc:
                raise ValueError(f"--{kind} {exc}") from None
    if args.turn and (args.turn_user is None or args.turn_password is None):
        raise ValueError("--turn needs --turn-user and --turn-password")
    user, password = args.turn_user or "", args.turn_password or ""
    return [(s, user, password) if s.kind == "turn" else (s, "", "") for s in found]


def _ws_problem(url: str) -> str | None:
    """Why `url` is no ws:// or wss:// URL with a host and a port in range, else None."""
    expected = "expected ws://HOST:PORT/signal or wss://..."
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError when out of range)
    except ValueError:
        return expected
    return None if parts.scheme in ("ws", "wss") and parts.hostname else expected


def _link_refused(link: str, exc: ApiCallError) -> ProbeResult:
    """The link's ticket refused, or its server not reached, as a failed probe of the link
    (shown without its token)."""
    from openfrp.netcheck.verdict import ProbeResult

    parts = urllib.parse.urlsplit(link)
    attrs = {"status": exc.status}
    if "final_code" in exc.answer:
        attrs["final_code"] = exc.answer["final_code"]
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return ProbeResult("link", where, False, detail=str(exc), attrs=attrs)


def _from_session(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill the probe options from a session's ticket; return an FRP8 session's signaling
    join (None for FRP7, whose WebSocket is probed)."""
    from openfrp.api_client import fetch_ticket
    from openfrp.netcheck.probes import ice_servers

    ticket = fetch_ticket(args.link, timeout=SessionSettings().connect_timeout)
    config = ticket.get("config") or {}
    block = config.get("frp8")
    args.session = args.session or ticket.get("session_id")
    if config.get("frp") != 8 or not isinstance(block, dict):
        if not isinstance(ticket.get("ws_url"), str):
            raise SettingsError(f"session {ticket.get('session_id')}: the ticket has no ws_url")
        args.frp7 = ticket["ws_url"]
        args.frp7_timeout = (config.get("terminal") or {}).get("connect_timeout")
        return None
    args.ice = ice_servers(block)  # each with its credentials; one that does not parse fails
    args.direct_only = not args.ice
    args.signaling = args.signaling or block.get("signaling_url")
    if args.signaling_timeout is None:  # an explicit option wins over the session's setting
        terminal = config.get("terminal", {})
        args.signaling_timeout = terminal.get("signaling_peer_timeout")
    return {
        "type": "join",
        "session_id": ticket.get("session_id"),
        "token": ticket.get("token"),
        "host": config.get("host"),
    }


def _print(results: list[Any], report: dict[str, Any]) -> None:
    from openfrp.netcheck.verdict import NO_RELAY

    for r in results:
        kind = r.kind.upper()
        if r.ok and r.kind == "frp7":
            print(f"{kind:9} {r.server:40} ok      {r.rtt_ms:7.1f} ms  the WebSocket opens")
        elif r.ok and r.kind == "signaling":
            peer = r.attrs.get("peer_id")
            where = f"server peer {peer}" if peer else "the hub answers"
            print(f"{kind:9} {r.server:40} ok      {r.rtt_ms:7.1f} ms  {where}")
        elif r.ok:
            where = r.attrs.get("mapped") or r.attrs.get("relayed")
            label = "you appear as" if r.kind == "stun" else "relay at"
            print(f"{kind:9} {r.server:40} ok      {r.rtt_ms:7.1f} ms  {label} {where}")
        else:
            print(f"{kind:9} {r.server:40} FAILED  {r.detail}")
    if report.get("direct_only"):
        print(f"{'ICE':9} {'no STUN or TURN server':40} {DIRECT_ONLY}")
    if report.get("no_relay"):
        print(f"{'TURN':9} {'no TURN server':40} {NO_RELAY}")
    if report["code"] is None:
        frp7 = all(r.kind == "frp7" for r in results)
        way = "FRP7 (WebSocket)" if frp7 else "FRP8 (WebRTC)"
        only = " over a direct path only" if report.get("direct_only") else ""
        print(f"verdict: every probe passed; {way} can connect from here{only}")
    else:
        print(f"verdict: [{report['code']} {report['name']}] {report['message']}")
        print(f"next step: {report['action']}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = SessionSettings()
    p = sub.add_parser(
        "netcheck",
        help="probe STUN/TURN/signaling: 5009, 5010, 5019, 4107 and why",
        description="Probe STUN (Binding), TURN (Allocate) and signaling servers the way FRP8 "
        "uses them and explain the result; --link probes what one session would use (an FRP7 "
        "session: its WebSocket).",
    )
    p.add_argument(
        "--link",
        help="a session's connect link or saved ticket: probe what it uses (FRP8: its ICE "
        "servers and signaling; FRP7: its WebSocket)",
    )
    p.add_argument("--signaling", metavar="ws://HOST:PORT/signal", help="a signaling hub")
    p.add_argument(
        "--signaling-timeout",
        type=float,
        metavar="S",
        help=f"default: the session's, else {defaults.signaling_peer_timeout}",
    )
    p.add_argument(
        "--stun",
        action="append",
        default=[],
        metavar="stun:HOST:PORT",
        help="a STUN server to send a Binding request to (repeatable)",
    )
    p.add_argument(
        "--turn",
        action="append",
        default=[],
        metavar="turn:HOST:PORT[?transport=tcp]",
        help="a TURN server to ask for an allocation (repeatable; turns:HOST:PORT over TLS)",
    )
    p.add_argument("--turn-user", metavar="USER", help="TURN user name")
    p.add_argument("--turn-password", metavar="PASSWORD", help="TURN password")
    p.add_argument(
        "--stun-timeout",
        type=float,
        default=defaults.stun_timeout,
        metavar="S",
        help="seconds to wait for a STUN answer (default: %(default)s)",
    )
    p.add_argument(
        "--turn-timeout",
        type=float,
        default=defaults.turn_timeout,
        metavar="S",
        help="seconds to wait for a TURN answer (default: %(default)s)",
    )
    p.add_argument("--log", metavar="FILE", help="append the probe events to this event log")
    p.add_argument("--session", metavar="ID", help="the session the check is for (in the log)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(handler=_cmd_netcheck, frp7=None, frp7_timeout=None, direct_only=False, ice=[])
