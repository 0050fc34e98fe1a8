"""OPENFRP_* variables and server.data_dir, as the server reads its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfrp.server.environment import apply, in_data_dir
from openfrp.settings import Config, SettingsError


def test_variables_are_typed_and_checked_like_the_file() -> None:
    config = apply(Config(), {"OPENFRP_PORT": "9000", "OPENFRP_LIVE_CONNECTION_TTL": "2.5"})
    assert (config.server.port, config.server.live_connection_ttl) == (9000, 2.5)
    assert apply(Config(), {"OPENFRP_UNRELATED": "x", "PORT": "1"}) == Config()
    with pytest.raises(SettingsError, match=r"^environment: server\.port: must be 0-65535"):
        apply(Config(), {"OPENFRP_PORT": "70000"})
    with pytest.raises(SettingsError, match=r"^OPENFRP_HEADER_TIMEOUT: expected a number"):
        apply(Config(), {"OPENFRP_HEADER_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="public_url: must start with http"):
        apply(Config(), {"OPENFRP_PUBLIC_URL": "desk.example.org"})


def test_data_dir_takes_the_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = in_data_dir(apply(Config(), {"OPENFRP_DATA_DIR": str(tmp_path / "d")}))
    assert config.server.registry == str(tmp_path / "d" / "registry.sqlite3")
    assert config.server.log_dir == str(tmp_path / "d" / "logs")
    moved = apply(
        Config(),
        {
            "OPENFRP_DATA_DIR": str(tmp_path / "d"),
            "OPENFRP_LOG_DIR": "/var/log/openfrp",
            "OPENFRP_REGISTRY": "redis://127.0.0.1:6379/0",
        },
    )
    assert in_data_dir(moved).server.log_dir == "/var/log/openfrp"
    assert in_data_dir(moved).server.registry == "redis://127.0.0.1:6379/0"
    unset = in_data_dir(Config(), {"XDG_DATA_HOME": str(tmp_path / "x")}, 1000)
    assert unset.server.data_dir == str(tmp_path / "x" / "openfrp")  # the platform's default
    assert unset.server.registry == str(tmp_path / "x" / "openfrp" / "registry.sqlite3")
