"""The command line as documented: --version, help for every option, exit 0 / 1 / 2."""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from openfrp.cli import build_parser

OPENFRP = str(Path(sys.executable).with_name("openfrp"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENFRP, *args], capture_output=True, text=True, timeout=60)


def test_version_names_the_installed_release() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"openfrp {metadata.version('openfrp')}"


def _undocumented(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _undocumented(child, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_every_option_of_every_command_has_help() -> None:
    assert list(_undocumented(build_parser(), "openfrp")) == []


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"error": "bad admin key"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_refusal_from_the_server_exits_1_in_one_line(refusing_server: str) -> None:
    done = run("sessions", "--server", refusing_server, "--admin-key", "wrong")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"openfrp sessions: GET {refusing_server}/api/sessions: 401 bad admin key"
    ]


def test_a_server_that_cannot_be_reached_exits_1() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = run("close", "s-1", "--server", nowhere, "--admin-key", "k")
    assert done.returncode == 1
    assert "server not reachable" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("codes", "--frp", "9"),
        ("sessions", "--no-such-option"),
        ("explain", "forty"),
        ("sessions", "--admin-key", "k\u20ac"),
    ],
)
def test_usage_mistakes_exit_2(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_each_command_has_one_owner_and_a_run_loads_only_its_layer(tmp_path: Path) -> None:
    from openfrp.commands import OWNERS

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) - {"codes", "explain"} == set(OWNERS)
    log = tmp_path / "empty.jsonl"
    log.write_text("", encoding="utf-8")
    probe = (
        "import sys; from openfrp import cli; cli.main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.startswith(('openfrp.server', "
        "'openfrp.terminal', 'urllib.request'))), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "analyze", str(log), "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_a_misspelt_option_gets_the_commands_usage_and_the_option_meant() -> None:
    done = run("sessions", "--url", "http://127.0.0.1:1")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: openfrp sessions ")  # the command's, not the top's
    assert "--url: did you mean --server?" in done.stderr
    done = run("launch", "--user", "a", "--launchpd", "x")
    assert done.returncode == 2 and "--launchpd: did you mean --launchpad?" in done.stderr
    done = run("sessions", "extra")
    assert done.returncode == 2 and done.stderr.splitlines()[-1].endswith(
        "unrecognized arguments: extra"
    )
