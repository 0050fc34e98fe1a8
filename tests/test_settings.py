"""Session settings: defaults, launchpad overrides, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfrp import settings
from openfrp.settings import Config, SessionSettings, SettingsError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "openfrp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    defaults = SessionSettings()
    assert defaults.idle_timeout == 600.0
    assert defaults.warn_before < defaults.max_session_duration
    assert defaults.duplicate_policy == "refuse"
    assert Config().for_launchpad("desktop") == defaults
    assert set(defaults.to_dict()) == set(settings._FIELD_TYPES)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = settings.load(write(tmp_path, ""))
    assert config == Config()
    assert config.for_launchpad("desktop").idle_timeout == 600.0


def test_launchpad_overrides_and_account_settings(tmp_path: Path) -> None:
    config = settings.load(
        write(
            tmp_path,
            """
            [server]
            port = 0
            display = "auto"

            [account]
            name = "acme"
            idle_timeout = 300
            keepalive_timeout = 20

            [launchpads.desktop]
            use_account_settings = true

            [launchpads.kiosk]
            idle_timeout = 60
            max_session_duration = 3600
            duplicate_policy = "takeover"

            [launchpads.lab]
            use_account_settings = false

            [launchpads.plain]
            """,
        )
    )
    assert config.server.port == 0
    assert config.server.display == "auto"
    assert config.account_name == "acme"
    assert config.account.idle_timeout == 300.0
    assert isinstance(config.account.idle_timeout, float)
    assert config.for_launchpad("desktop") == config.account
    kiosk = config.for_launchpad("kiosk")
    assert kiosk.idle_timeout == 60.0
    assert kiosk.max_session_duration == 3600.0
    assert kiosk.duplicate_policy == "takeover"
    assert kiosk.keepalive_timeout == 20.0, "keys a launchpad does not set come from the account"
    assert config.for_launchpad("lab") == config.account
    assert config.for_launchpad("plain") == config.account


def test_zero_allowed_where_it_means_none(tmp_path: Path) -> None:
    config = settings.load(write(tmp_path, "[account]\nwarn_before = 0\nreconnect_attempts = 0\n"))
    assert config.account.warn_before == 0.0
    assert config.account.reconnect_attempts == 0


def test_an_unopened_session_waits_as_long_as_its_link_unless_open_timeout_says(
    tmp_path: Path,
) -> None:
    text = "[account]\nlink_ttl = 900\n[launchpads.brief]\nopen_timeout = 120\n"
    config = settings.load(write(tmp_path, text))
    assert config.account.open_timeout == 0.0 and config.account.unopened_for == 900.0
    assert config.for_launchpad("brief").unopened_for == 120.0
    with pytest.raises(SettingsError, match="open_timeout: must not be negative"):
        settings.load(write(tmp_path, "[account]\nopen_timeout = -1\n"))


def test_unknown_launchpad_names_it() -> None:
    with pytest.raises(SettingsError, match=r"unknown launchpad 'nope' \(configured: desktop\)"):
        Config().for_launchpad("nope")


# The form a slip from ws:// takes, and the others RFC 7064/7065 refuse: each in one line with
# the setting, the value and the form to write.
TURN_FORM = "turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]"


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("turn_url", "turn://h:3478",
         "server.turn_url: 'turn://h:3478': write turn:HOST:PORT (no //)"),
        ("turn_url", "turns://h", "server.turn_url: 'turns://h': write turns:HOST:PORT (no //)"),
        ("stun_url", "stun://h:3478",
         "server.stun_url: 'stun://h:3478': write stun:HOST:PORT (no //)"),
        ("turn_url", "turn:h:3478?transport=sctp",
         "server.turn_url: 'turn:h:3478?transport=sctp': only turn: addresses take "
         "?transport=udp|tcp"),
        ("turn_url", "turn:h:70000", f"server.turn_url: 'turn:h:70000': write {TURN_FORM}"),
        ("turn_url", "turn:[::1", f"server.turn_url: 'turn:[::1': write {TURN_FORM}"),
        ("stun_url", "stuns:h:5349", "server.stun_url: 'stuns:h:5349': STUN over TLS is not used "
         "(aiortc skips it); write stun:HOST[:PORT]"),
        ("stun_url", "turn:h:3478", "server.stun_url: 'turn:h:3478': turn: is not a stun scheme; "
         "write stun:HOST[:PORT]"),
    ],
)  # fmt: skip
def test_a_stun_or_turn_url_of_another_form_is_refused_in_one_line(
    key: str, value: str, says: str
) -> None:
    """turn://HOST:PORT was taken (only its prefix was checked), then dropped by the peers."""
    with pytest.raises(SettingsError) as caught:
        settings.from_mapping({"server": {key: value, "turn_user": "u", "turn_password": "p"}})
    assert str(caught.value) == says


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("turn_url", "TURN:h", "turn:h"),
        ("turn_url", "turn:10.0.0.1:3478?transport=udp", "turn:10.0.0.1:3478?transport=udp"),
        ("turn_url", "turn:h:3478?transport=tcp", "turn:h:3478?transport=tcp"),
        ("turn_url", "Turns:h", "turns:h"),
        ("stun_url", "stun:[2001:db8::1]", "stun:[2001:db8::1]"),
        ("stun_url", "Stun:stun.example.com:19302", "stun:stun.example.com:19302"),
    ],
)
def test_stun_and_turn_urls_of_the_rfc_forms_are_kept_with_the_scheme_in_lower_case(
    key: str, value: str, kept: str
) -> None:
    config = settings.from_mapping({"server": {key: value}})
    assert getattr(config.server, key) == kept


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[account]\nidle_timeout = -1", "account.idle_timeout: must not be negative"),
        (
            "[account]\nkeepalive_timeout = 0",
            "account.keepalive_timeout: must be greater than zero",
        ),
        ('[account]\nidle_timeout = "ten"', "account.idle_timeout: expected a number"),
        ("[account]\nidle_timeout = true", "account.idle_timeout: expected a number"),
        ("[account]\nidle_timeout = [600]", "account.idle_timeout: expected a number"),
        ("[account]\nidle_timeout = nan", "account.idle_timeout: must be a finite number"),
        ("[account]\nidle_timeout = inf", "account.idle_timeout: must be a finite number"),
        ("[account]\nmax_receive_timeouts = 2.5", "account.max_receive_timeouts: expected a whole"),
        ("[account]\nsend_buffer_limit = false", "account.send_buffer_limit: expected a number"),
        ("[account]\nduplicate_policy = 1", "account.duplicate_policy: expected a string"),
        ("[account]\nfit_windows = 1", "account.fit_windows: expected true or false"),
        ('[account]\nfit_windows = "yes"', "account.fit_windows: expected true or false"),
        ('[account]\nduplicate_policy = "kick"', "account.duplicate_policy: must be one of"),
        (
            "[account]\nidle_timout = 5",
            "account: unknown key 'idle_timout' (did you mean 'idle_timeout'?)",
        ),
        ("[account]\nname = 5", "account.name: expected a string"),
        ("account = 5", "account: expected a table"),
        ('account = "acme"', "account: expected a table"),
        (
            "[account]\nwarn_before = 600\nmax_session_duration = 600",
            "account.warn_before: must be shorter than max_session_duration",
        ),
        (
            "[launchpads.short]\nmax_session_duration = 200",
            "launchpads.short.warn_before: must be shorter than max_session_duration",
        ),
        (
            "[account]\nreconnect_backoff_initial = 20",
            "account.reconnect_backoff_initial: must not exceed reconnect_backoff_max",
        ),
        ("[launchpads.desktop]\nidle_timeout = -5", "launchpads.desktop.idle_timeout"),
        ("[launchpads.desktop]\nidle = 5", "launchpads.desktop: unknown key 'idle' (known keys: "),
        (
            '[launchpads.desktop]\nuse_account_settings = "yes"',
            "launchpads.desktop.use_account_settings: expected true/false",
        ),
        (
            "[launchpads.desktop]\nuse_account_settings = true\nidle_timeout = 5",
            "launchpads.desktop: has overrides but use_account_settings = true",
        ),
        ("launchpads = 3", "launchpads: expected a table"),
        ("[launchpads]\ndesktop = 3", "launchpads.desktop: expected a table"),
        ("[accounts]\nidle_timeout = 5", "unknown section(s): accounts (did you mean [account]?)"),
        ("server = 1", "server: expected a table"),
        ("[server]\nbind = 1", "server: unknown key 'bind'"),
        ("[server]\nprot = 1", "server: unknown key 'prot' (did you mean 'port'?)"),
        ("[server]\nname = 1", "server.name: expected a string"),
        ('[server]\nport = "80"', "server.port: expected a whole number"),
        ("[server]\nport = 70000", "server.port: must be 0-65535"),
        ("[server]\nport = true", "server.port: expected a whole number"),
        ('[server]\ndisplay = "vnc"', "server.display: must be one of"),
        ("[account\nidle_timeout = 5", "not valid TOML"),
        ("[launchpads.rtc]\nfrp = 9", "launchpads.rtc.frp: must be 7 (WebSocket) or 8 (WebRTC)"),
        ("[launchpads.rtc]\nfrp = 0", "launchpads.rtc.frp: must be 7 (WebSocket) or 8"),
        ('[account]\nfrp8_fallback = "frp6"', "account.frp8_fallback: must be one of frp7, none"),
        ('[server]\nice_policy = "host"', "server.ice_policy: must be one of all, relay"),
        ('[server]\nice_policy = "relay"', "server.ice_policy: relay uses TURN candidates only"),
        (
            '[server]\nstun_url = "stun.example:3478"',
            "server.stun_url: 'stun.example:3478': write stun:HOST[:PORT]",
        ),
        (
            '[server]\nturn_url = "http://t"',
            "server.turn_url: 'http://t': http: is not a turn "
            "scheme; write turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]",
        ),
        ('[server]\nsignaling_url = "http://h/signal"', "server.signaling_url: must start with ws"),
        (
            '[server]\nsignaling_url = "ws://h:70000/signal"',
            "server.signaling_url: 'ws://h:70000/signal': Port out of range 0-65535",
        ),
        ('[server]\npublic_url = "https://:443"', "server.public_url: 'https://:443': no host"),
        (
            "[launchpads.rtc]\nfrp = 8\nconnect_timeout = 8\nsignaling_peer_timeout = 10",
            "launchpads.rtc.signaling_peer_timeout (10 s) leaves FRP8 less than 2 s to set up "
            "within connect_timeout (8 s, of which 6 s for the setup)",
        ),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        settings.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert says in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "cannot read (No such file or directory)"),
        ("directory", "cannot read (Is a directory)"),
        ("latin-1", "not UTF-8 text (invalid start byte at byte 5)"),
    ],
)
def test_unreadable_file_names_it(tmp_path: Path, kind: str, says: str) -> None:
    path = {"missing": tmp_path / "missing.toml", "directory": tmp_path}.get(kind)
    if path is None:
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'a = "\xff"')
    with pytest.raises(SettingsError) as caught:
        settings.load(path)
    assert str(caught.value) == f"{path}: {says}"


def test_from_mapping_without_a_file() -> None:
    config = settings.from_mapping({"launchpads": {"kiosk": {"idle_timeout": 30}}})
    assert config.for_launchpad("kiosk").idle_timeout == 30.0
    with pytest.raises(SettingsError, match="unknown launchpad 'desktop'"):
        config.for_launchpad("desktop")


def test_the_default_timers_fit_frp8_and_a_websocket_launchpad_is_not_checked(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "[launchpads.rtc]\nfrp = 8\n[launchpads.ws]\nconnect_timeout = 1\n",
    )
    config = settings.load(path)
    assert config.launchpads["rtc"].frp == 8 and config.launchpads["ws"].connect_timeout == 1


def test_an_idle_timeout_shorter_than_the_reconnect_window_is_doubted(tmp_path: Path) -> None:
    """Valid, but a terminal still within its window is refused with 4009: the operator hears
    it at start (serve logs each doubt as a warning)."""
    config = settings.load(
        write(
            tmp_path,
            """
            [launchpads.kiosk]
            idle_timeout = 60
            [launchpads.desktop]
            """,
        )
    )
    assert config.doubts() == [
        "launchpad kiosk: idle_timeout 60 s is shorter than reconnect_window 120 s: a terminal "
        "still reconnecting after idle_timeout is refused with 4009"
    ]
    assert Config().doubts() == []
