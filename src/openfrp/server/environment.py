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

from openfrp.datadir import default_data_dir
from openfrp.server.registry.opener import is_url
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


def in_data_dir(
    config: Config, environ: Mapping[str, str] | None = None, uid: int | None = None
) -> Config:
    """server.data_dir made absolute (unset: the platform's default, see openfrp.datadir),
    and the registry and event log read inside it when relative, so the server finds its
    state again whatever the working directory. `environ` and `uid` are for tests."""
    opts = config.server
    if opts.data_dir:
        base = Path(opts.data_dir).expanduser().resolve()
    else:
        base = default_data_dir(environ, uid)

    def inside(value: str) -> str:
        return str(base / Path(value).expanduser())  # an absolute value stays as it is

    registry = opts.registry if is_url(opts.registry) else inside(opts.registry)
    server = replace(opts, data_dir=str(base), registry=registry, log_dir=inside(opts.log_dir))
    return replace(config, server=server)


def apply(config: Config, environ: Mapping[str, str]) -> Config:
    values = server_overrides(environ)
    if not values:
        return config
    try:
        return with_server(config, values)
    except SettingsError as exc:
        raise SettingsError(f"environment: {exc}") from None
