"""`openfrp` command line: one sub-command per job.

Exit status: 0 done; 1 refused or failed (the server said no or cannot be reached, a session
ended with an error, an analyzer threshold held); 2 a usage mistake (a bad option, value or
settings file), told in one line, never as a traceback."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from openfrp import codes

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A mistake in what the user typed; printed as one line, never as a traceback."""


def _cmd_codes(args: argparse.Namespace) -> int:
    rows = [
        c
        for c in codes.TABLE
        if (args.component is None or c.component.value.lower() == args.component)
        and (args.type is None or c.kind.value.lower() == args.type)
        and (args.frp is None or args.frp in c.frp_versions)
    ]
    if args.json:
        print(json.dumps([c.to_dict() for c in rows], indent=2))
        return 0
    if args.markdown:
        print(codes.markdown(rows), end="")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"openfrp codes ({len(rows)})")
    for column in ("code", "name", "type", "component", "FRP", "fault", "reconnect", "message"):
        table.add_column(column, overflow="fold")
    for c in rows:
        table.add_row(*c.cells())
    Console(width=max(140, Console().width)).print(table)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    text = args.code.strip()
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"'{args.code}' is not a code number (try 4102)") from None
    row = codes.lookup(number)
    if row is None:
        print(codes.describe(number))
        return 0
    print(f"{row.number} {row.name} ({row.kind.value}, {row.component.value}, {row.frp})")
    print(f"  description: {row.description}")
    print(f"  message:     {row.message}")
    print(f"  action:      {row.action}")
    print(f"  fault:       {row.fault.value}")
    print(f"  reconnect:   {'yes' if row.reconnect else 'no'}")
    return 0


class _Version(argparse.Action):
    """--version, looked up only when asked for (importlib.metadata takes 50 ms to import)."""

    def __init__(self, option_strings: list[str], dest: str, **_: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"openfrp {_version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; given the command a run asked for, only that command's layer registers."""
    parser = argparse.ArgumentParser(
        prog="openfrp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("codes", help="print the code table")
    p.add_argument(
        "--component", choices=["server", "terminal", "variable"], help="only codes of this side"
    )
    p.add_argument("--type", choices=["info", "error"], help="only codes of this type")
    p.add_argument("--frp", type=int, choices=[7, 8], help="only codes of this FRP version")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="the table as docs/codes.md")
    p.set_defaults(handler=_cmd_codes)

    p = sub.add_parser("explain", help="explain one code (any number)")
    p.add_argument("code", help="the code number, e.g. 4102")
    p.set_defaults(handler=_cmd_explain)

    for register in _registrars(command):
        register(sub)
    return parser


# Other tools' names for an option of ours.
_SAME = {"--url": "--server", "--address": "--server", "--key": "--admin-key"}


def _unrecognized(parser: argparse.ArgumentParser, command: str, words: list[str]) -> None:
    """Stop with the command's own usage (not the top level's) and, for an option misspelt,
    the one meant: `--url` names `--server`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own: argparse.ArgumentParser = sub.choices[command]
    known = [o for a in own._actions for o in a.option_strings if o not in ("-h", "--help")]
    hints = []
    for word in (w.split("=", 1)[0] for w in words if w.startswith("-")):
        meant = _SAME.get(word)
        close = [meant] if meant in known else difflib.get_close_matches(word, known, 1, 0.5)
        hints += [f"{word}: did you mean {close[0]}?"] if close else []
    named = " ".join(words)
    own.error(f"unrecognized arguments: {named}" + ("".join(f"; {h}" for h in hints)))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("openfrp")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _registrars(
    command: str | None,
) -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    from openfrp import commands

    if command in commands.OWNERS:
        return [commands.OWNERS[command]]
    return [] if command in ("codes", "explain") else commands.REGISTRARS


def _api_refused(exc: Exception) -> bool:
    """Whether `exc` is the API's refusal (exit 1, not a usage error): only a command that
    imported the API client can raise one, and `analyze` has no use for its urllib."""
    client = sys.modules.get("openfrp.api_client")
    return client is not None and isinstance(exc, client.ApiCallError)


def _settings_error(exc: Exception) -> bool:
    """Whether `exc` is a settings file's problem: only a command that imported the settings
    can raise one, and `analyze` has no use for them (importing them took 0.04 s)."""
    settings = sys.modules.get("openfrp.settings")
    return settings is not None and isinstance(exc, settings.SettingsError)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(words)
    if unknown:
        _unrecognized(parser, args.command, unknown)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`openfrp analyze ... | head`): not an error of
        # ours. Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if not isinstance(exc, UsageError) and not _settings_error(exc):
            raise
        print(f"openfrp {args.command}: {exc}", file=sys.stderr)
        return 1 if _api_refused(exc) else 2


if __name__ == "__main__":
    sys.exit(main())
