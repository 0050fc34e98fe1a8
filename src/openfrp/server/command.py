"""`openfrp serve`, `launch`, `sessions`, `close` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from openfrp.api_client import ApiCallError, api, checked_url, segment
from openfrp.datadir import resolve_data_dir
from openfrp.server.isolation import write_private
from openfrp.settings import Config, SettingsError, load, with_server


def _config(args: argparse.Namespace) -> Config:
    """The settings file, then OPENFRP_* variables, then command-line options; paths typed on
    the command line are relative to the working directory, those of the settings to the
    data folder."""
    from openfrp.server import environment
    from openfrp.server.registry.opener import is_url

    def here(path: str | None, registry: bool = False) -> str | None:
        """A path from the working directory; a URL as it is (a registry's mistyped one too,
        so its opening refuses it by the value typed)."""
        if path is None or (is_url(path) if registry else "://" in path):
            return path
        return str(Path(path).expanduser().absolute())

    config = environment.apply(load(args.config) if args.config else Config(), os.environ)
    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("log_dir", here(args.log_dir)),
            ("registry", here(args.registry, registry=True)),
            ("data_dir", here(args.data_dir)),
        )
        if v is not None
    }
    try:  # checked as the settings file's are, and named by the option typed
        config = with_server(config, overrides) if overrides else config
    except SettingsError as exc:
        setting, _, reason = str(exc).partition(": ")
        key = setting.removeprefix("server.")
        if key not in overrides:
            raise
        raise SettingsError(f"--{key.replace('_', '-')}: {reason}") from None
    return environment.in_data_dir(config)


def _operator_log(args: argparse.Namespace) -> None:
    from openfrp.server import oplog

    oplog.setup(args.log_format, args.log_level)


def _cmd_serve(args: argparse.Namespace) -> int:
    from openfrp.server.serve import serve

    _operator_log(args)
    return asyncio.run(serve(_config(args), args.ready_file))


# A selection goes to CLIPBOARD, which the session shares with the person's clipboard, so
# text selected in the xterm pastes at home with Ctrl+V (xterm keeps it in PRIMARY alone);
# Ctrl+Shift+C and Ctrl+Shift+V copy and paste, as in other terminals (xterm binds neither);
# Alt+key sends Escape and the key, as the shell's word motions (Alt+B, Alt+F) expect.
DEMO_APP = (
    "xterm -geometry 120x36+0+0 -fa Monospace -fs 11 -xrm 'XTerm*selectToClipboard: true' "
    "-xrm 'XTerm*metaSendsEscape: true' "
    "-xrm 'XTerm*VT100.translations: #override Ctrl Shift <Key>V: insert-selection(CLIPBOARD)"
    "\\n Ctrl Shift <Key>C: copy-selection(CLIPBOARD)'"
)


def _demo_config(args: argparse.Namespace) -> Config:
    """Without --config, the demo's desktop launchpad runs an xterm on a real Xvfb display
    where both are installed, so a first session is a real desktop with a real app in it,
    filling the screen as it follows the person's window."""
    config = _config(args)
    if args.config or not (shutil.which("Xvfb") and shutil.which("xterm")):
        return config
    pads = {
        name: pad if pad.app_command else replace(pad, app_command=DEMO_APP, fit_windows=True)
        for name, pad in config.launchpads.items()
    }
    return replace(config, server=replace(config.server, display="xvfb"), launchpads=pads)


def _cmd_demo(args: argparse.Namespace) -> int:
    from openfrp.server.serve import serve
    from openfrp.server.sessions import ServerState

    _operator_log(args)

    async def announce(state: ServerState) -> None:
        ticket = await state.launch("demo-user", next(iter(state.config.launchpads)))
        print("\nA demo session is waiting. Open this link in a browser:\n")
        print(f"  {ticket['connect_url']}\n")
        print("or join it from another shell with:\n")
        print(f"  .venv/bin/openfrp connect '{ticket['connect_url']}'\n")
        print("Type 'close' (end the session) or 'disconnect' (keep it) in the terminal.")
        print("Stop the server with Ctrl-C: live sessions end with 4019.\n", flush=True)

    return asyncio.run(serve(_demo_config(args), args.ready_file, on_ready=announce))


DEFAULT_SERVER = "http://127.0.0.1:8470"


def _admin_key(args: argparse.Namespace) -> tuple[str, str]:
    """The admin key and where it came from, for the message if the server refuses it."""
    if args.admin_key:
        return str(args.admin_key), "given with --admin-key"
    path = resolve_data_dir(args.data_dir) / "admin.key"
    try:
        return path.read_text(encoding="ascii").strip(), f"read from {path}"
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a key"
        raise SettingsError(
            f"no --admin-key given and {path} cannot be read ({why}): give --admin-key KEY, "
            "or --data-dir DIR where the server keeps admin.key (its start says where), as a "
            "user who may read it"
        ) from None


def _call(
    args: argparse.Namespace, method: str, route: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the API with --token, else the admin key. A refused admin key is said so, with its
    source: the server's answer is about tokens, and the usual cause is another data folder's
    admin.key. A server not reached at the default address is said to be the default."""
    base = checked_url(
        "--server",
        DEFAULT_SERVER if args.server is None else args.server,
        ("http", "https"),
        "http://HOST:PORT or https://HOST:PORT",
    ).rstrip("/")
    token = getattr(args, "token", None)
    key, source = (token, "") if token else _admin_key(args)
    url = f"{base}{route}"
    try:
        return api(method, url, key, body)
    except ApiCallError as exc:
        if exc.status == 401 and not token:
            raise ApiCallError(
                f"{method} {url}: 401 the server refused the admin key ({source}): pass its "
                "key with --admin-key, or its data folder (holding admin.key) with --data-dir",
                exc.status,
                exc.answer,
            ) from None
        if exc.status is None and args.server is None:
            raise ApiCallError(
                f"{exc} (no --server given, so the default {DEFAULT_SERVER} was used)"
            ) from None
        raise


def _cmd_launch(args: argparse.Namespace) -> int:
    ticket = _call(args, "POST", "/api/sessions", {"user": args.user, "launchpad": args.launchpad})
    if args.out:
        write_private(Path(args.out), json.dumps(ticket, indent=2).encode())  # holds a token
    print(
        json.dumps(ticket, indent=2)
        if args.json
        else f"session {ticket['session_id']} for {args.user}\n"
        f"  browser: {ticket['connect_url']}\n"
        f"  openfrp connect '{ticket['connect_url']}'"
    )
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    sessions = _call(args, "GET", "/api/sessions")["sessions"]
    if args.json:
        print(json.dumps(sessions, indent=2))
        return 0
    if not sessions:
        print("no sessions")
        return 0
    rows = [("SESSION", "USER", "LAUNCHPAD", "STATE", "CODE", "HOST", "CREATED (UTC)")]
    for s in sessions:
        code = s["final_code"] if s["final_code"] is not None else "-"
        # A host that no longer answers (crashed, say): its last recorded state may not hold.
        host = s["host"] if s.get("host_up", True) else f"{s['host']} (down)"
        created = str(s.get("created_ts") or "-")[:19].replace("T", " ")
        rows.append(
            (s["session_id"], s["user"], s["launchpad"], s["state"], str(code), host, created)
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)) + f"  {row[-1]}"
        )
    return 0


def _cmd_close(args: argparse.Namespace) -> int:
    if not args.session_id:
        raise SettingsError(
            "the session id is empty: name the session to close (openfrp sessions lists them)"
        )
    result = _call(args, "DELETE", f"/api/sessions/{segment(args.session_id)}")
    print(f"session {result['session_id']} closed with {result['final_code']}")
    return 0


def _cmd_guest(args: argparse.Namespace) -> int:
    """Run inside a session (the app's environment names where and how to ask)."""
    from openfrp import guest

    return guest.main([args.action, *([args.file] if args.file else [])])


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML settings file (server, account, launchpads)")
    p.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (0 picks a free one)")
    p.add_argument(
        "--data-dir",
        help="the server's folder: registry, event log, secret, admin key (default: "
        "$OPENFRP_DATA_DIR, server.data_dir, else /var/lib/openfrp as root, "
        "$XDG_DATA_HOME/openfrp or ~/.local/share/openfrp)",
    )
    p.add_argument("--log-dir", help="folder of the event log (default: DATA_DIR/logs)")
    p.add_argument(
        "--registry",
        help="SQLite registry file, or redis://HOST:PORT/DB shared by several hosts "
        "(default: DATA_DIR/registry.sqlite3)",
    )
    p.add_argument("--ready-file", help="write the URL and admin key here once listening")
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="the operator's log on stderr: text lines or one JSON object a line",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="least severe operator message shown (default: %(default)s)",
    )


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        metavar="URL",
        help=f"the server, http://HOST:PORT or https://HOST:PORT (default: {DEFAULT_SERVER})",
    )
    p.add_argument("--admin-key", help="admin key (default: read from DATA_DIR/admin.key)")
    p.add_argument(
        "--data-dir",
        help="the server's data folder, where admin.key is (default: $OPENFRP_DATA_DIR, else "
        "the server's own default: /var/lib/openfrp as root, $XDG_DATA_HOME/openfrp or "
        "~/.local/share/openfrp)",
    )


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the session server")
    _server_args(p)
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("demo", help="run the server and launch one demo session")
    _server_args(p)
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("launch", help="launch a session for a user (admin)")
    _client_args(p)
    p.add_argument("--user", required=True, help="the user the session is for")
    p.add_argument(
        "--launchpad", default="desktop", help="launchpad to start (default: %(default)s)"
    )
    p.add_argument("--out", help="also write the ticket JSON to this file")
    p.add_argument("--json", action="store_true", help="print the ticket as JSON")
    p.set_defaults(handler=_cmd_launch)

    p = sub.add_parser("sessions", help="list sessions (admin: all; --token: your own)")
    _client_args(p)
    p.add_argument("--token", help="a user's session token instead of the admin key")
    p.add_argument("--json", action="store_true", help="print the sessions as JSON")
    p.set_defaults(handler=_cmd_sessions)

    p = sub.add_parser(
        "guest",
        help="from inside a session: shut down (4015), log off (4018) or offer a file (download)",
    )
    p.add_argument(
        "action",
        choices=["shutdown", "logoff", "download"],
        help="shutdown ends with 4015, logoff with 4018, download offers FILE",
    )
    p.add_argument("file", nargs="?", help="download: the file to offer to the terminal")
    p.set_defaults(handler=_cmd_guest)

    p = sub.add_parser("close", help="close a session from outside (4019)")
    _client_args(p)
    p.add_argument("session_id", help="the session to close")
    p.add_argument("--token", help="a user's session token instead of the admin key")
    p.set_defaults(handler=_cmd_close)
