"""The data folder by the platform's conventions, and how a named one wins over it.

Every case passes its own environment and user id: no real home or /var/lib is looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfrp.cli import build_parser
from openfrp.datadir import default_data_dir, resolve_data_dir
from openfrp.server.command import _config
from openfrp.server.environment import apply, in_data_dir
from openfrp.settings import Config

USER = 1000


def test_root_keeps_its_state_where_system_services_do() -> None:
    assert default_data_dir({}, 0) == Path("/var/lib/openfrp")
    # root's own XDG_DATA_HOME or HOME does not move a system server's state
    assert default_data_dir({"HOME": "/root", "XDG_DATA_HOME": "/root/x"}, 0) == Path(
        "/var/lib/openfrp"
    )


def test_a_systemd_state_directory_wins_for_any_user() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/private/openfrp:/var/lib/other", "HOME": "/home/u"}
    assert default_data_dir(env, 0) == Path("/var/lib/private/openfrp")
    assert default_data_dir(env, USER) == Path("/var/lib/private/openfrp")
    assert default_data_dir({"STATE_DIRECTORY": "relative"}, 0) == Path("/var/lib/openfrp")


def test_a_user_with_xdg_data_home(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": "/home/u"}
    assert default_data_dir(env, USER) == tmp_path / "data" / "openfrp"


def test_a_user_without_xdg_data_home_or_with_a_relative_one() -> None:
    expected = Path("/home/u/.local/share/openfrp")
    assert default_data_dir({"HOME": "/home/u"}, USER) == expected
    # the XDG spec: a relative value is invalid and ignored
    assert default_data_dir({"HOME": "/home/u", "XDG_DATA_HOME": "data"}, USER) == expected
    assert default_data_dir({"HOME": "/home/u", "XDG_DATA_HOME": ""}, USER) == expected


def test_a_named_folder_wins_and_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"OPENFRP_DATA_DIR": "from-env", "HOME": "/home/u"}
    assert resolve_data_dir("named", env) == tmp_path / "named"
    assert resolve_data_dir(None, env) == tmp_path / "from-env"
    assert resolve_data_dir(None, {"XDG_DATA_HOME": str(tmp_path)}) == default_data_dir(
        {"XDG_DATA_HOME": str(tmp_path)}
    )


def test_the_server_settings_default_into_the_platform_folder(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    server = in_data_dir(Config(), env, USER).server
    base = tmp_path / "openfrp"
    assert (server.data_dir, server.registry, server.log_dir) == (
        str(base),
        str(base / "registry.sqlite3"),
        str(base / "logs"),
    )
    assert in_data_dir(Config(), {}, 0).server.registry == "/var/lib/openfrp/registry.sqlite3"
    named = in_data_dir(apply(Config(), {"OPENFRP_DATA_DIR": str(tmp_path / "d")}), env, USER)
    assert named.server.data_dir == str(tmp_path / "d")  # a named folder wins


def test_command_line_paths_are_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path typed in a shell means what the shell means by it; a settings file's relative
    paths are inside the data folder, wherever the server starts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENFRP_DATA_DIR", raising=False)
    (tmp_path / "server.toml").write_text('[server]\nregistry = "state/r.sqlite3"\n')
    args = build_parser().parse_args(
        ["serve", "--config", "server.toml", "--data-dir", "d", "--log-dir", "here-logs"]
    )
    server = _config(args).server
    assert server.data_dir == str(tmp_path / "d")
    assert server.registry == str(tmp_path / "d" / "state" / "r.sqlite3")
    assert server.log_dir == str(tmp_path / "here-logs")
