"""`openfrp connect`: join a session from its connect link or a saved ticket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from openfrp import codes
from openfrp.api_client import ApiCallError, checked_url, fetch_ticket
from openfrp.codes import CodeNumber
from openfrp.datadir import resolve_data_dir
from openfrp.events import EventLog
from openfrp.protocol.monitors import MAX_SECONDARIES
from openfrp.protocol.terminal_connection import SessionTicket, show
from openfrp.settings import SessionSettings, SettingsError, build
from openfrp.terminal.script import parse_size

WEBSOCKET_SCHEMES = ("ws", "wss")


def _ticket(
    data: dict[str, Any], client: str, monitor: int = 0
) -> tuple[SessionTicket, SessionSettings, str]:
    try:
        ticket = SessionTicket(
            session_id=str(data["session_id"]),
            token=str(data["token"]),
            config=dict(data["config"]),
            config_digest=str(data["config_digest"]),
            client=client,
            monitor=monitor,
        )
        ws_url = str(data["ws_url"])
        settings = build(
            "session configuration", dict(data["config"]["terminal"]), SessionSettings()
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"the ticket is incomplete or malformed ({exc})") from None
    return ticket, settings, ws_url


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_paths(args: argparse.Namespace) -> None:
    """SettingsError naming a --log, --screenshot or --downloads the terminal could not use:
    found at start, not in a traceback or at the session's end."""
    for option, path in (("--log", args.log), ("--screenshot", args.screenshot)):
        if path is None:
            continue
        if Path(path).is_dir():
            raise SettingsError(f"{option} {path}: is a directory; name a file in it")
        if not Path(path).parent.resolve().is_dir():
            raise SettingsError(f"{option} {path}: its folder does not exist")
    downloads = Path(args.downloads) if args.downloads is not None else None
    if downloads is not None and downloads.exists() and not downloads.is_dir():
        raise SettingsError(f"--downloads {args.downloads}: is not a directory")


def _cmd_connect(args: argparse.Namespace) -> int:
    from openfrp.terminal.client import Terminal, read_commands

    _check_paths(args)
    for option, url in (("--ws-url", args.ws_url), ("--signaling-url", args.signaling_url)):
        if url is not None:  # checked now: the terminal would retry it until connect_timeout
            checked_url(
                option, url, WEBSOCKET_SCHEMES, "ws://HOST:PORT/PATH or wss://HOST:PORT/PATH"
            )
    try:
        data = fetch_ticket(args.link, timeout=SessionSettings().connect_timeout)
    except ApiCallError as exc:
        final = exc.answer.get("final_code")
        if exc.status is None:
            final = CodeNumber.CONNECT_TIMEOUT
        row = codes.lookup(final) if isinstance(final, int) else None
        if row is None:
            raise
        print(f"{show(row.number).text} ({exc})", flush=True)
        if exc.status == 410:  # the link's session has ended: its token gets nothing more
            print(f"session over: {codes.describe(row.number)}", flush=True)
        return 1  # refused, whatever the code: even an ended session's 4000 joins nothing
    ticket, settings, ws_url = _ticket(data, args.client, args.monitor)
    if args.ws_url:
        ws_url = args.ws_url
    log_path = args.log or str(resolve_data_dir() / "logs" / f"terminal-{ticket.session_id}.jsonl")

    async def main() -> int:
        try:
            log = EventLog(log_path)
        except OSError as exc:  # unwritable, say: the default path is checked here only
            raise SettingsError(f"event log {log_path}: cannot write it ({exc.strerror})") from None
        terminal = Terminal(
            ticket,
            settings,
            ws_url,
            log,
            signaling_url=args.signaling_url,
            screenshot=args.screenshot,
            screen=args.size,
            downloads=args.downloads,
        )
        if not args.no_stdin:
            read_commands(terminal, asyncio.get_running_loop())
        interrupted = _leave_on_ctrl_c(terminal)
        try:
            status = await terminal.run()
        finally:
            log.close()
        return 130 if interrupted else status

    return asyncio.run(main())


def _leave_on_ctrl_c(terminal: Any) -> list[bool]:
    """Ctrl-C leaves as `disconnect` does: the server is told, so it keeps the session for a
    resume (a connection dropped without a word is a loss to the server and the analyzer).
    A second Ctrl-C stops at once, whatever the first is waiting on (a worker thread the
    interpreter would join at exit, a close handshake): every event is already on disk.
    Returns a list that holds True once it was pressed."""
    loop = asyncio.get_running_loop()
    pressed: list[bool] = []

    def leave() -> None:
        pressed.append(True)
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, _stop_now)  # runs even while the loop is busy
        print("interrupted: disconnecting; the session stays open for a resume", flush=True)
        terminal.post("leave", "disconnect")

    with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
        loop.add_signal_handler(signal.SIGINT, leave)
    return pressed


def _stop_now(signum: int, frame: object) -> None:
    print("interrupted again: stopping now", flush=True)
    sys.stderr.flush()
    os._exit(130)


def register(sub: Any) -> None:
    p = sub.add_parser("connect", help="join a session (connect link or ticket file)")
    p.add_argument("link", help="connect link http://HOST:PORT/s/ID#token=T, or a ticket file")
    p.add_argument(
        "--log",
        help="terminal event log (default: DATA_DIR/logs/terminal-SESSION.jsonl, DATA_DIR "
        "as for the server: $OPENFRP_DATA_DIR, /var/lib/openfrp as root, else "
        "$XDG_DATA_HOME/openfrp or ~/.local/share/openfrp)",
    )
    p.add_argument(
        "--ws-url", help="override the WebSocket URL of the ticket (FRP7; ws:// or wss://)"
    )
    p.add_argument(
        "--signaling-url", help="override the signaling URL of the ticket (FRP8; ws:// or wss://)"
    )
    p.add_argument("--client", default="cli", help="client name reported to the server")
    p.add_argument("--no-stdin", action="store_true", help="do not read commands from stdin")
    p.add_argument("--screenshot", metavar="FILE", help="save the screen as a PNG at the end")
    p.add_argument(
        "--size", type=_size, metavar="WxH", help="ask for a screen of this size (pixels)"
    )
    p.add_argument("--downloads", metavar="DIR", help="save files offered by the session here")
    p.add_argument(
        "--monitor",
        type=int,
        choices=range(1, MAX_SECONDARIES + 1),
        default=0,
        metavar="N",
        help=f"show secondary monitor N (1-{MAX_SECONDARIES}) of a session already open",
    )
    p.set_defaults(handler=_cmd_connect)
