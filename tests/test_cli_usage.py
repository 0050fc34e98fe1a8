"""The command line as documented: --version, help for every option, exit 0 / 1 / 2."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from openfrp import cli
from openfrp.cli import build_parser
from tests.support.fake_api import fake_api

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


def test_a_refusal_from_the_server_exits_1_in_one_line() -> None:
    with fake_api(404, {"error": "no session 's-9' for this caller"}) as api:
        done = run("close", "s-9", "--server", api.url, "--admin-key", "k")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"openfrp close: DELETE {api.url}/api/sessions/s-9: 404 no session 's-9' for this caller"
    ]


def test_another_web_server_at_the_address_is_said_so_in_one_line() -> None:
    with fake_api(200, raw=b"<html><body>It works!</body></html>") as api:
        done = run("sessions", "--server", api.url, "--admin-key", "k")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"openfrp sessions: GET {api.url}/api/sessions: the answer is not the openfrp API's "
        "(not JSON): is this the openfrp server's address?"
    ]


# What the server answers a key that is neither its admin key nor a session's token.
NOT_A_TOKEN = "invalid token: token is not of the form HEADER.CLAIMS.SIGNATURE in base64url"


@pytest.mark.parametrize("command", [("sessions",), ("launch", "--user", "a"), ("close", "s-1")])
def test_a_refused_admin_key_says_where_it_came_from_and_how_to_pass_another(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / "admin.key").write_text("old-key\n", encoding="ascii")
    with fake_api(401, {"error": NOT_A_TOKEN}) as api:
        given = run(*command, "--server", api.url, "--admin-key", "wrong")
        read = run(*command, "--server", api.url, "--data-dir", str(tmp_path))
    for done in (given, read):
        assert done.returncode == 1 and done.stdout == "", done.stderr
        [line] = done.stderr.splitlines()
        assert "the server refused the admin key" in line and "HEADER.CLAIMS" not in line
        assert "--admin-key" in line and "--data-dir" in line
    assert "(given with --admin-key)" in given.stderr
    assert f"(read from {tmp_path / 'admin.key'})" in read.stderr
    assert [auth for _, _, auth in api.requests] == ["Bearer wrong", "Bearer old-key"]


def test_a_refused_session_token_keeps_the_servers_reason() -> None:
    with fake_api(401, {"error": "invalid token: token has expired"}) as api:
        done = run("sessions", "--server", api.url, "--token", "t")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"openfrp sessions: GET {api.url}/api/sessions: 401 invalid token: token has expired"
    ]


def _nowhere() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_server_that_cannot_be_reached_exits_1() -> None:
    done = run("close", "s-1", "--server", _nowhere(), "--admin-key", "k")
    assert done.returncode == 1
    assert "server not reachable" in done.stderr and "Traceback" not in done.stderr
    assert "is the server running" in done.stderr and "default" not in done.stderr


def test_a_server_not_reached_at_the_default_address_says_it_was_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from openfrp.server import command

    nowhere = _nowhere()
    monkeypatch.setattr(command, "DEFAULT_SERVER", nowhere)
    assert cli.main(["sessions", "--admin-key", "k"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "server not reachable" in line and "is the server running" in line
    assert f"no --server given, so the default {nowhere} was used" in line


@pytest.mark.parametrize(
    "server",
    [
        "localhost",
        "not a url",
        "http//127.0.0.1:8720",
        "127.0.0.1:8720",
        "ftp://127.0.0.1:8720",
        "http://",
        "http://127.0.0.1:port",
        "http://127.0.0.1:8720/a b",
    ],
)
def test_a_server_url_of_another_form_is_a_usage_error(server: str) -> None:
    done = run("sessions", "--server", server, "--admin-key", "k")
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.splitlines() == [
        f"openfrp sessions: --server {server!r}: expected http://HOST:PORT or https://HOST:PORT"
    ]


def test_close_sends_the_session_id_as_one_path_segment() -> None:
    with fake_api(200, {"session_id": "s", "final_code": 4019}) as api:
        for session in ("a b", "s-1?x=1", "../s-2", "s#3"):
            done = run("close", session, "--server", api.url, "--admin-key", "k")
            assert done.returncode == 0, done.stderr
        empty = run("close", "", "--server", api.url, "--admin-key", "k")
    assert [path for _, path, _ in api.requests] == [
        "/api/sessions/a%20b",
        "/api/sessions/s-1%3Fx%3D1",
        "/api/sessions/..%2Fs-2",
        "/api/sessions/s%233",
    ]
    assert empty.returncode == 2 and empty.stderr.splitlines() == [
        "openfrp close: the session id is empty: name the session to close "
        "(openfrp sessions lists them)"
    ]


def test_a_links_session_goes_into_the_ticket_url_as_one_segment() -> None:
    from openfrp.api_client import fetch_ticket

    with fake_api(200, {"session_id": "s"}) as api:
        for link in ("/s/a b#token=t", "/s/a%20b#token=t", "/pre/s/s-1%3Fx#token=t"):
            fetch_ticket(api.url + link, timeout=5)
    assert [path for _, path, _ in api.requests] == [
        "/api/sessions/a%20b/ticket",
        "/api/sessions/a%20b/ticket",
        "/pre/api/sessions/s-1%3Fx/ticket",
    ]


def _ticket_file(tmp_path: Path, ws_url: str) -> str:
    """A saved launch answer whose terminal gives up connecting after a second."""
    ticket = {
        "session_id": "s-1",
        "token": "t",
        "config": {"frp": 7, "terminal": {"connect_timeout": 1}},
        "config_digest": "d",
        "ws_url": ws_url,
    }
    path = tmp_path / "ticket.json"
    path.write_text(json.dumps(ticket), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("--ws-url", "not a url"),
        ("--ws-url", "http://127.0.0.1:1/frp7"),
        ("--ws-url", "ws://"),
        ("--signaling-url", "127.0.0.1:1/signal"),
    ],
)
def test_connect_refuses_a_websocket_url_of_another_form_at_once(
    option: str, url: str, tmp_path: Path
) -> None:
    log = tmp_path / "terminal.jsonl"
    ticket = _ticket_file(tmp_path, "ws://127.0.0.1:1/frp7")
    done = run("connect", ticket, option, url, "--no-stdin", "--log", str(log))
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [
        f"openfrp connect: {option} {url!r}: expected ws://HOST:PORT/PATH or wss://HOST:PORT/PATH"
    ]
    assert not log.exists()


@pytest.mark.parametrize(
    ("option", "where", "says"),
    [
        ("--log", "folder", "is a directory; name a file in it"),
        ("--log", "folder/missing/t.jsonl", "its folder does not exist"),
        ("--screenshot", "folder", "is a directory; name a file in it"),
        ("--downloads", "ticket.json", "is not a directory"),
    ],
)
def test_connect_refuses_a_path_it_could_not_use_at_once(
    option: str, where: str, says: str, tmp_path: Path
) -> None:
    """Before, --log onto a folder was a traceback, and --screenshot and --downloads failed
    only when the session gave them something to write."""
    (tmp_path / "folder").mkdir()
    ticket = _ticket_file(tmp_path, "ws://127.0.0.1:1/frp7")
    path = str(tmp_path / where)
    log = [] if option == "--log" else ["--log", str(tmp_path / "t.jsonl")]
    done = run("connect", ticket, "--no-stdin", *log, option, path)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [f"openfrp connect: {option} {path}: {says}"]


def test_connect_to_a_session_that_has_ended_exits_1() -> None:
    over = "This session is over: ask whoever sent you the link for a new session."
    answer = {"error": "session 's-1' has ended", "final_code": 4019, "next": over}
    with fake_api(410, answer) as api:
        done = run("connect", f"{api.url}/s/s-1#token=t", "--no-stdin")
    assert done.returncode == 1, done.stdout
    assert "session over: 4019 CLOSED_REMOTELY" in done.stdout and over in done.stdout


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


def test_an_admin_key_that_cannot_be_read_says_what_to_give(tmp_path: Path) -> None:
    done = run("sessions", "--server", "http://127.0.0.1:9", "--data-dir", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"openfrp sessions: no --admin-key given and {tmp_path / 'admin.key'} cannot be read "
        "(No such file or directory): give --admin-key KEY, or --data-dir DIR where the server "
        "keeps admin.key (its start says where), as a user who may read it"
    ]
