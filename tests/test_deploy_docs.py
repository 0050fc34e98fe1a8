"""The deployment examples in docs/ say what openfrp understands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from openfrp.cli import build_parser
from openfrp.server.environment import apply, in_data_dir, server_overrides
from openfrp.settings import Config, load

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


def test_each_settings_example_in_the_readme_is_one_openfrp_loads(tmp_path: Path) -> None:
    """A person copies them: each ```toml block is valid TOML that `serve --config` accepts
    (a key given twice once made the main example fail to load)."""
    readme = (UNIT.parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"example-{number}.toml"
        path.write_text(block)
        config = load(path)
        assert config.launchpads, block[:80]
