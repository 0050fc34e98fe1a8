"""Sub-commands that live beside their layer register here, keeping cli.py small."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _server(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openfrp.server.command import register

    register(sub)


def _terminal(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openfrp.terminal.command import register

    register(sub)


def _analysis(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openfrp.analysis.command import register

    register(sub)


def _netcheck(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openfrp.netcheck.command import register

    register(sub)


REGISTRARS: list[Registrar] = [_server, _terminal, _netcheck, _analysis]

# Which registrar holds each command: a run registers only its own command's layer, so
# `openfrp analyze` does not import the server's and the terminal's modules (0.15 s a run).
OWNERS: dict[str, Registrar] = {
    **dict.fromkeys(("serve", "demo", "launch", "sessions", "guest", "close"), _server),
    "connect": _terminal,
    "netcheck": _netcheck,
    **dict.fromkeys(("analyze", "simulate"), _analysis),
}
