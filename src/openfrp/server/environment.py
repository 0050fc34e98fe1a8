"""OPENFRP_* environment variables: every [server] setting, for containers and systemd units.

OPENFRP_PORT=8443 sets server.port, OPENFRP_PUBLIC_URL sets server.public_url, and so on for
every key of the [server] table. They override the settings file; command-line options
override both. Values are checked as the settings file's are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from openfrp.settings import Config, ServerOptions, SettingsError, with_server

PREFIX = "OPENFRP_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _value(name: str, kind: type, text: str) -> Any:
    try:
        if kind is bool:
            if text.lower() not in TRUE + FALSE:
                raise ValueError
            return text.lower() in TRUE
        return kind(text)
    except ValueError:
        what = {int: "a whole number", float: "a number", bool: "true or false"}[kind]
        raise SettingsError(f"{name}: expected {what}, got {text!r}") from None


def server_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The [server] keys the environment sets, typed like their defaults."""
    defaults = ServerOptions()
    values: dict[str, Any] = {}
    for option in fields(ServerOptions):
        name = PREFIX + option.name.upper()
        if name in environ:
            kind = type(getattr(defaults, option.name))
            text = environ[name]
            values[option.name] = text if kind is str else _value(name, kind, text)
    return values


def in_data_dir(config: Config) -> Config:
    """With server.data_dir set (made absolute): the registry and event log default into it
    and relative paths of the settings are read inside it, whatever the working directory."""
    opts = config.server
    if not opts.data_dir:
        return config
    base = Path(opts.data_dir).expanduser().resolve()
    defaults = ServerOptions()

    def inside(value: str, default: str, name: str) -> str:
        path = Path(name) if value == default else Path(value).expanduser()
        return str(base / path)

    registry = opts.registry
    if "://" not in registry:
        registry = inside(registry, defaults.registry, "registry.sqlite3")
    log_dir = inside(opts.log_dir, defaults.log_dir, "logs")
    server = replace(opts, data_dir=str(base), registry=registry, log_dir=log_dir)
    return replace(config, server=server)


def apply(config: Config, environ: Mapping[str, str]) -> Config:
    values = server_overrides(environ)
    if not values:
        return config
    try:
        return with_server(config, values)
    except SettingsError as exc:
        raise SettingsError(f"environment: {exc}") from None
