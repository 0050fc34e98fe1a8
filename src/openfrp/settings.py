"""Session settings: account defaults, optionally overridden per launchpad.

Loaded from TOML and validated up front so that a bad file fails with one line naming the key,
never with a traceback in the middle of a session.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import urllib.parse
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from openfrp.rtc import parse_server

DUPLICATE_POLICIES = ("refuse", "takeover")
FALLBACKS = ("frp7", "none")
TRANSPORTS = (7, 8)
ICE_POLICIES = ("all", "relay")
DESK_POLICIES = ("both", "to_session", "from_session", "off")  # clipboard, file_transfer


class SettingsError(ValueError):
    """A settings problem, worded for the person who wrote the file."""


@dataclass(frozen=True)
class SessionSettings:
    """Every timer of the code contract, in seconds unless the name says otherwise."""

    frp: int = 7
    frp8_fallback: str = "frp7"
    idle_timeout: float = 600.0
    link_ttl: float = 3600.0  # how long a connect link may fetch its session's ticket
    # how long a session nobody opened waits for its first terminal (0: as long as its link)
    open_timeout: float = 0.0
    # what a session's terminal may ship into the server's log per minute
    terminal_events_per_minute: int = 600
    terminal_event_bytes_per_minute: int = 512 * 1024
    max_session_duration: float = 8 * 3600.0
    warn_before: float = 300.0
    receive_timeout: float = 10.0
    max_receive_timeouts: int = 3
    heartbeat_interval: float = 5.0
    handshake_timeout: float = 10.0
    send_buffer_limit: int = 4 * 1024 * 1024
    display_ready_timeout: float = 30.0
    display_change_timeout: float = 10.0
    profile_mount_timeout: float = 60.0
    profile_mount_command: str = ""
    app_command: str = ""
    fit_windows: bool = False  # the app's windows fill the screen and follow it (no WM)
    run_as: str = ""  # the OS user the app runs as (needs root); "" = a pool user as root
    # the most processes the app's user may run (RLIMIT_NPROC), set where the app starts as
    # a user of its own (a root server)
    max_app_processes: int = 1024
    video_failure_limit: int = 5
    max_width: int = 1920  # the largest screen a terminal's window may ask for, in pixels
    max_height: int = 1080
    x264_params: str = ""  # extra libx264 options for the stream, "key=value:key=value"
    duplicate_policy: str = "refuse"
    # Which way text and files may cross between terminal and session (DESK_POLICIES), and
    # how large: a clipboard text travels in one control message (256 KiB encoded at most).
    clipboard: str = "both"
    clipboard_limit: int = 64 * 1024
    file_transfer: str = "both"
    file_transfer_limit: int = 100 * 1024 * 1024
    connect_timeout: float = 15.0
    keepalive_timeout: float = 15.0
    reconnect_attempts: int = 8
    reconnect_window: float = 120.0
    reconnect_backoff_initial: float = 0.5
    reconnect_backoff_max: float = 10.0
    signaling_peer_timeout: float = 10.0
    negotiation_timeout: float = 15.0
    ice_disconnected_after: float = 5.0
    ice_failed_after: float = 15.0
    stun_timeout: float = 3.0
    turn_timeout: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def unopened_for(self) -> float:
        """Seconds a launched session waits for its first terminal: a link that still works
        must still find its session, so by default as long as the link lives."""
        return self.open_timeout or self.link_ttl


_FIELD_TYPES: dict[str, type] = {
    f.name: type(getattr(SessionSettings(), f.name)) for f in fields(SessionSettings)
}
_MAY_BE_ZERO = {"warn_before", "reconnect_attempts", "open_timeout"}


def _unknown(where: str, key: str, known: list[str]) -> SettingsError:
    """A key no table has: the one it was likely meant to be, else every one there is."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
    return SettingsError(f"{where}: unknown key '{key}' ({hint})")


def _check_value(where: str, key: str, value: Any) -> Any:
    if key not in _FIELD_TYPES:
        raise _unknown(where, key, list(_FIELD_TYPES))
    want = _FIELD_TYPES[key]
    if want is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}.{key}: expected true or false, got {value!r}")
        return value
    if want is str:
        if not isinstance(value, str):
            raise SettingsError(f"{where}.{key}: expected a string, got {value!r}")
        allowed = {
            "duplicate_policy": DUPLICATE_POLICIES,
            "frp8_fallback": FALLBACKS,
            "clipboard": DESK_POLICIES,
            "file_transfer": DESK_POLICIES,
        }.get(key)
        if allowed is not None and value not in allowed:
            raise SettingsError(
                f"{where}.{key}: must be one of {', '.join(allowed)}, got {value!r}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{where}.{key}: expected a number, got {value!r}")
    if want is int and not isinstance(value, int):
        raise SettingsError(f"{where}.{key}: expected a whole number, got {value!r}")
    if key == "frp" and value not in TRANSPORTS:
        raise SettingsError(f"{where}.frp: must be 7 (WebSocket) or 8 (WebRTC), got {value!r}")
    if not math.isfinite(value):
        raise SettingsError(f"{where}.{key}: must be a finite number, got {value!r}")
    if value < 0:
        raise SettingsError(f"{where}.{key}: must not be negative, got {value!r}")
    if value == 0 and key not in _MAY_BE_ZERO:
        raise SettingsError(f"{where}.{key}: must be greater than zero")
    return want(value)


FALLBACK_RESERVE_MS = 2000
MIN_ICE_MS = 2000


def setup_budget_ms(settings: SessionSettings) -> int:
    """How long a terminal's FRP8 setup may take: connect_timeout less a reserve (2 s, or a
    quarter of a short connect_timeout) in which the hello, or the fallback to FRP7, fits."""
    window = round(settings.connect_timeout * 1000)
    return window - min(FALLBACK_RESERVE_MS, window // 4)


def budget_problem(settings: SessionSettings) -> str | None:
    """Why these timers cannot set FRP8 up within connect_timeout, or None when they can."""
    budget = setup_budget_ms(settings)
    if round(settings.signaling_peer_timeout * 1000) + MIN_ICE_MS > budget:
        return (
            f"signaling_peer_timeout ({settings.signaling_peer_timeout:g} s) leaves FRP8 less "
            f"than {MIN_ICE_MS // 1000} s to set up within connect_timeout "
            f"({settings.connect_timeout:g} s, of which {budget / 1000:g} s for the setup): "
            "shorten signaling_peer_timeout or lengthen connect_timeout"
        )
    return None


def build(where: str, values: dict[str, Any], base: SessionSettings) -> SessionSettings:
    """Apply `values` over `base`, checking every key and the cross-field rules."""
    checked = {key: _check_value(where, key, value) for key, value in values.items()}
    result = replace(base, **checked)
    if result.warn_before >= result.max_session_duration:
        raise SettingsError(
            f"{where}.warn_before: must be shorter than max_session_duration "
            f"({result.warn_before} >= {result.max_session_duration})"
        )
    if result.max_width < 320 or result.max_height < 200:
        raise SettingsError(f"{where}.max_width/max_height: must be at least 320x200")
    problem = budget_problem(result) if result.frp == 8 else None
    if problem is not None:
        raise SettingsError(f"{where}.{problem}")
    if result.reconnect_backoff_initial > result.reconnect_backoff_max:
        raise SettingsError(
            f"{where}.reconnect_backoff_initial: must not exceed reconnect_backoff_max"
        )
    return result


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8470
    name: str = "openfrp-host"
    secret: str = ""
    # relative paths are inside data_dir (below), wherever the server starts
    registry: str = "registry.sqlite3"  # or redis://HOST:PORT/DB, shared by hosts
    log_dir: str = "logs"
    display: str = "auto"  # xvfb where Xvfb is installed, else synthetic
    video_fps: int = 30
    forget_ended_after: int = 300
    # FRP8: the signaling hub the server peer registers with ("" = this server's own /signal)
    # and the ICE servers handed to both peers. TURN credentials travel in the session
    # configuration, so use credentials meant for terminals.
    signaling_url: str = ""
    stun_url: str = ""
    turn_url: str = ""
    turn_user: str = ""
    turn_password: str = ""
    ice_policy: str = "all"
    live_connection_ttl: float = 15.0  # a host's record of a live connection lapses after this
    session_homes: str = ""  # where each session's home folder is made ("" = system temp)
    admin_key_epoch: int = 0  # raise it (on every host) to rotate the admin key
    max_open_files: int = 65536  # the soft descriptor limit is raised toward this at start
    header_timeout: float = 10.0  # seconds a connection may take to send a request head
    body_timeout: float = 30.0  # seconds a request's body may take once its head has come
    max_connections_per_address: int = 512  # open connections from one client address
    # launches this host accepts: live sessions in all, live sessions of one user, per minute
    max_live_sessions: int = 1000
    max_live_sessions_per_user: int = 10
    max_launches_per_minute: int = 600
    log_max_bytes: int = 256 * 1024 * 1024  # the event log rotates at this size (0: never)
    log_keep: int = 10  # rotated event logs kept (server-events.jsonl.1 the newest)
    registry_retention: float = 7 * 86400.0  # seconds an ended session stays in the registry
    max_pending_registry_writes: int = 10000  # held while the registry is away; then dropped
    # Behind a front end: the URL people reach the server at (scheme, host, port, path
    # prefix; "" = this server's own address), the proxies whose X-Forwarded-* headers are
    # believed (comma-separated addresses or networks, "*" any, "" none), direct TLS files.
    public_url: str = ""
    trusted_proxies: str = "127.0.0.1,::1"
    tls_cert: str = ""
    tls_key: str = ""
    # The server's folder (registry, logs, secret, admin key when those are not set apart);
    # relative paths of the settings are inside it. "" = the platform's default (see
    # openfrp.datadir): /var/lib/openfrp for root, else $XDG_DATA_HOME/openfrp or
    # ~/.local/share/openfrp.
    data_dir: str = ""


_SERVER_TYPES: dict[str, type] = {
    f.name: type(getattr(ServerOptions(), f.name)) for f in fields(ServerOptions)
}


@dataclass(frozen=True)
class Config:
    """What `openfrp serve --config FILE` reads: server options, account and launchpads."""

    server: ServerOptions = field(default_factory=ServerOptions)
    account_name: str = "default"
    account: SessionSettings = field(default_factory=SessionSettings)
    launchpads: dict[str, SessionSettings] = field(
        default_factory=lambda: {"desktop": SessionSettings()}
    )

    def doubts(self) -> list[str]:
        """Settings that are valid but work against each other, for the operator to hear."""
        said = []
        for name, pad in self.launchpads.items():
            if pad.idle_timeout < pad.reconnect_window:
                said.append(
                    f"launchpad {name}: idle_timeout {pad.idle_timeout:g} s is shorter than "
                    f"reconnect_window {pad.reconnect_window:g} s: a terminal still reconnecting "
                    "after idle_timeout is refused with 4009"
                )
        return said

    def for_launchpad(self, name: str) -> SessionSettings:
        try:
            return self.launchpads[name]
        except KeyError:
            known = ", ".join(sorted(self.launchpads)) or "none"
            raise SettingsError(f"unknown launchpad '{name}' (configured: {known})") from None


def _positive(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"server.{key}: expected a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(f"server.{key}: must be a finite number above zero, got {value!r}")
    return float(value)


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why `url` (when given) is not one of `schemes` with a host and a port in range."""
    if not url:
        return None
    if not url.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        return f"must start with {' or '.join(f'{scheme}://' for scheme in schemes)}"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError when out of range)
    except ValueError as exc:
        return f"{url!r}: {exc}"
    return None if parts.hostname else f"{url!r}: no host"


def _server_options(values: Any) -> ServerOptions:
    if not isinstance(values, dict):
        raise SettingsError("server: expected a table")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        want = _SERVER_TYPES.get(key)
        if want is None:
            raise _unknown("server", key, list(_SERVER_TYPES))
        if want is float:
            checked[key] = _positive(key, value)
            continue
        if isinstance(value, bool) or not isinstance(value, want):
            what = "a whole number" if want is int else "a string"
            raise SettingsError(f"server.{key}: expected {what}, got {value!r}")
        checked[key] = value
    port = checked.get("port", 0)
    if not 0 <= port <= 65535:
        raise SettingsError(f"server.port: must be 0-65535, got {port}")
    limits = ("max_live_sessions", "max_live_sessions_per_user", "max_launches_per_minute")
    for key in (*limits, "max_connections_per_address", "max_pending_registry_writes"):
        if checked.get(key, 1) < 1:
            raise SettingsError(f"server.{key}: must be at least 1")
    size = checked.get("log_max_bytes", 0)
    if size < 0 or 0 < size < 1024 or checked.get("log_keep", 1) < 1:
        raise SettingsError("server.log_max_bytes: 0 or at least 1024; server.log_keep: 1 or more")
    if checked.get("max_open_files", 65536) < 256:
        raise SettingsError("server.max_open_files: must be at least 256")
    if checked.get("admin_key_epoch", 0) < 0:
        raise SettingsError("server.admin_key_epoch: must be 0 or more")
    if not 0 <= checked.get("video_fps", 30) <= 60:
        raise SettingsError("server.video_fps: must be 0 (no video) to 60")
    if checked.get("display", "auto") not in ("synthetic", "xvfb", "auto"):
        raise SettingsError("server.display: must be one of synthetic, xvfb, auto")
    if checked.get("ice_policy", "all") not in ICE_POLICIES:
        raise SettingsError(f"server.ice_policy: must be one of {', '.join(ICE_POLICIES)}")
    if checked.get("ice_policy") == "relay" and not checked.get("turn_url"):
        raise SettingsError(
            "server.ice_policy: relay uses TURN candidates only, so it needs server.turn_url "
            "(without it no FRP8 session can connect)"
        )
    for key in ("stun_url", "turn_url"):
        if checked.get(key):
            try:
                parse_server(key[:4], checked[key], bare=False)
            except ValueError as exc:
                raise SettingsError(f"server.{key}: {exc}") from None
            # kept as written (Chromium takes turn:H?transport=udp and turn:H apart), but for
            # the scheme's case, which the page's own reading of the URL goes by
            scheme, _, rest = checked[key].partition(":")
            checked[key] = f"{scheme.lower()}:{rest}"
    for key, schemes in (("signaling_url", ("ws", "wss")), ("public_url", ("http", "https"))):
        problem = _url_problem(checked.get(key, ""), schemes)
        if problem:
            raise SettingsError(f"server.{key}: {problem}")
    if bool(checked.get("tls_cert")) != bool(checked.get("tls_key")):
        raise SettingsError("server.tls_cert, server.tls_key: give both or neither")
    return ServerOptions(**checked)


def with_server(config: Config, values: dict[str, Any]) -> Config:
    """The config with these [server] keys replaced, checked as the settings file's are."""
    return replace(config, server=_server_options({**asdict(config.server), **values}))


def from_mapping(data: dict[str, Any]) -> Config:
    sections = ["server", "account", "launchpads"]
    unknown = sorted(set(data) - set(sections))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sections, n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else f" (sections: {', '.join(sections)})"
        raise SettingsError(f"unknown section(s): {', '.join(unknown)}{hint}")
    server = _server_options(data.get("server", {}))
    if not isinstance(data.get("account", {}), dict):
        raise SettingsError("account: expected a table")
    account_values = dict(data.get("account", {}))
    account_name = account_values.pop("name", "default")
    if not isinstance(account_name, str):
        raise SettingsError("account.name: expected a string")
    account = build("account", account_values, SessionSettings())
    launchpads: dict[str, SessionSettings] = {}
    raw_pads = data.get("launchpads", {"desktop": {}})
    if not isinstance(raw_pads, dict):
        raise SettingsError("launchpads: expected a table of launchpads")
    for name, values in raw_pads.items():
        if not isinstance(values, dict):
            raise SettingsError(f"launchpads.{name}: expected a table")
        values = dict(values)
        use_account = values.pop("use_account_settings", not values)
        if not isinstance(use_account, bool):
            raise SettingsError(f"launchpads.{name}.use_account_settings: expected true/false")
        if use_account and values:
            raise SettingsError(
                f"launchpads.{name}: has overrides but use_account_settings = true; "
                "remove the overrides or set it to false"
            )
        launchpads[name] = account if use_account else build(f"launchpads.{name}", values, account)
    return Config(server=server, account_name=account_name, account=account, launchpads=launchpads)


def load(path: str | Path) -> Config:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{file}: not valid TOML ({exc})") from None
    try:
        return from_mapping(data)
    except SettingsError as exc:
        raise SettingsError(f"{file}: {exc}") from None
