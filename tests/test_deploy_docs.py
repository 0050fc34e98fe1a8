"""The deployment examples in docs/ say what openfrp understands."""

from __future__ import annotations

import shlex
from pathlib import Path

from openfrp.cli import build_parser
from openfrp.server.environment import apply, in_data_dir, server_overrides
from openfrp.settings import Config

UNIT = Path(__file__).resolve().parents[1] / "docs/openfrp.service"


def _service() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_the_systemd_unit_runs_a_command_and_settings_openfrp_accepts() -> None:
    unit = _service()
    command = shlex.split(unit["ExecStart"][0])
    assert Path(command[0]).name == "openfrp"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.log_format) == ("serve", "json")
    environ = dict(value.split("=", 1) for value in unit["Environment"])
    assert all(name.startswith("OPENFRP_") for name in environ)
    assert len(server_overrides(environ)) == len(environ)  # each one is a [server] key
    config = apply(Config(), environ)
    assert config.server.public_url == "https://desk.example.org/openfrp"
    assert config.server.port == 8470
    systemd = {"STATE_DIRECTORY": "/var/lib/" + unit["StateDirectory"][0]}  # as systemd sets it
    server = in_data_dir(config, systemd, uid=0 if unit["User"] == ["root"] else 999).server
    assert (server.data_dir, server.log_dir) == ("/var/lib/openfrp", "/var/log/openfrp")
    assert unit["WorkingDirectory"] == [server.data_dir]
    assert unit["KillSignal"] == ["SIGTERM"]  # the signal that ends sessions with 4019
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # reopens the event log
