"""A realistic fleet log with known answers, to test and benchmark the analyzer.

Every failure chain of the code table is produced the way the server and terminal write it,
with skewed terminal clocks, out-of-order and corrupt lines. Beside the log goes the ground
truth (session id -> category, and the numbers of the bad lines), so the analyzer's accuracy
can be measured instead of trusted. Lines are formatted by hand, not with json.dumps, because
ten million events must be written in well under a minute.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO

from openfrp import codes
from openfrp.codes import CodeNumber

SECOND = 1_000_000
MINUTE = 60 * SECOND
BASE_US = 1_772_409_600 * SECOND  # 2026-03-02T00:00:00Z
IDLE_TIMEOUT = 10 * MINUTE
LINK_TTL = 60 * MINUTE  # a session nobody opens ends when its link does (4019)
ACCOUNTS = ("acme", "globex", "initech", "umbrella")
LAUNCHPADS = ("office", "design", "support")
HOSTS = tuple(f"host-{n:02d}" for n in range(1, 17))
USERS_PER_ACCOUNT = 120
BATCH = 256
BAD_LINE_RATE = 0.0004

APP_EXIT = "the session's app exited with status %d"
CRASH = "the server stopped without ending this session (a crash) and has started again"
TURN_401 = "credentials rejected (401): check the TURN user and password"
UNOPENED = (
    "the session's link was never opened: no terminal joined within 3600 s of its link's issue"
)

_DAYS: dict[int, str] = {}


def _day(index: int) -> str:
    text = _DAYS.get(index)
    if text is None:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(index * 86400, UTC)
        text = _DAYS[index] = when.strftime("%Y-%m-%dT")
    return text


def format_us(us: int) -> str:
    """Microseconds since the epoch as the event log writes them (events.format_ts)."""
    day, rest = divmod(us, 86_400 * SECOND)
    secs, micro = divmod(rest, SECOND)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{_day(day)}{hours:02d}:{minutes:02d}:{secs:02d}.{micro:06d}Z"


def _code_part(number: int | None) -> str:
    if number is None:
        return '"code":null,"severity":"info","message":null'
    row = codes.lookup(number)
    if row is None:
        return f'"code":{number},"severity":"error","message":"unexpected close"'
    severity = "info" if row.kind is codes.Kind.INFO else "error"
    return f'"code":{number},"severity":"{severity}","message":{json.dumps(row.message)}'


_CODE_PARTS: dict[int | None, str] = {}
_CODE_NAMES: dict[int, str] = {c.number: c.name for c in codes.TABLE}


def _code_fields(number: int | None) -> str:
    part = _CODE_PARTS.get(number)
    if part is None:
        part = _CODE_PARTS[number] = _code_part(number)
    return part


class _Session:
    """One session being written: a clock, both sides' identity fields, and its lines."""

    def __init__(self, rng: random.Random, index: int, seed: int, start_us: int) -> None:
        self.rng = rng
        self.id = f"s{seed:x}-{index:07d}"
        account = rng.choice(ACCOUNTS)
        self.frp = 8 if rng.random() < 0.4 else 7
        self.client = "cli" if rng.random() < 0.35 else "browser"
        self.now = start_us
        self.skew = rng.randint(-2 * SECOND, 2 * SECOND) if rng.random() < 0.7 else 0
        self.conn = 0
        self.lines: list[tuple[int, str]] = []
        user = f"user{rng.randrange(USERS_PER_ACCOUNT):03d}@{account}.example"
        launchpad = f"{account}/{rng.choice(LAUNCHPADS)}"
        self._head = f'","host":"{rng.choice(HOSTS)}","session_id":"{self.id}","connection_id":'
        self._tail = f',"user":"{user}","account":"{account}","launchpad":"{launchpad}","frp":'

    def force_frp(self, frp: int) -> None:
        self.frp = frp

    def wait(self, low_ms: float, high_ms: float | None = None) -> None:
        span = low_ms if high_ms is None else self.rng.uniform(low_ms, high_ms)
        self.now += int(span * 1000)

    def _emit(self, source: str, us: int, event: str, code: int | None, attrs: str) -> None:
        conn = f'"{self.id}.{self.conn}"' if self.conn else "null"
        prev = f'"{self.id}.{self.conn - 1}"' if self.conn > 1 else "null"
        if code is not None:
            name = _CODE_NAMES.get(code, "UNKNOWN")
            attrs = f'"code_name":"{name}",{attrs}' if attrs else f'"code_name":"{name}"'
        text = (
            f'{{"ts":"{format_us(us)}","source":"{source}{self._head}{conn},'
            f'"previous_connection_id":{prev}{self._tail}{self.frp},"event":"{event}",'
            f'{_code_fields(code)},"attrs":{{{attrs}}}}}\n'
        )
        self.lines.append((us if source == "server" else us - self.skew, text))

    def srv(self, event: str, code: int | None = None, attrs: str = "") -> None:
        self._emit("server", self.now, event, code, attrs)

    def term(self, event: str, code: int | None = None, attrs: str = "") -> None:
        self._emit("terminal", self.now + self.skew, event, code, attrs)

    # Building blocks shared by the scenarios.

    def launch(self) -> None:
        self.srv("session.created")
        self.wait(500, 8000)

    def attempt(self) -> None:
        self.term("connect.attempt", attrs=f'"url":"wss://{self.id}"')
        self.wait(20, 200)
        self.conn += 1
        self.srv("connection.opened", attrs='"remote":"198.51.100.7"')

    def accept(self, resume: bool = False) -> None:
        """The server accepts a hello: connection.established on both sides (the server logs it
        before the session starts, as the real one does; a start can still fail after it)."""
        attrs = f'"client":"{self.client}","resume":{"true" if resume else "false"}'
        self.srv("connection.established", attrs=attrs)
        if resume:
            self.srv("session.resumed", attrs='"replayed":0')
        self.wait(5, 60)
        self.term("connection.established", attrs=attrs)

    def start(self) -> None:
        self.srv("session.starting")
        self.wait(400, 4000)

    def started(self) -> None:
        self.srv("session.started", attrs=f'"time_to_start_ms":{self.rng.randint(400, 4000)}')

    def connect(self) -> None:
        self.launch()
        self.attempt()
        self.accept()
        self.start()
        self.started()

    def join_and_close(self) -> None:
        """A connection attempt that works, an active session, and a close (4000)."""
        self.attempt()
        self.accept()
        self.start()
        self.started()
        self.active()
        self.end(CodeNumber.USER_CLOSED)

    def active(self, low_min: float = 2, high_min: float = 240) -> None:
        self.wait(self.rng.uniform(low_min, high_min) * 60_000)

    def end(self, code: int, reason: str = "") -> None:
        attrs = f'"reason":{json.dumps(reason)}' if reason else ""
        self.srv("connection.closed", code, attrs)
        self.srv("session.ended", code, attrs)
        self.wait(5, 80)
        self.term("connection.closed", code)

    def server_drop(self, code: int) -> None:
        if code == CodeNumber.RECEIVE_TIMEOUTS:
            for count in range(1, 4):
                self.srv("receive.timeout", attrs=f'"count":{count}')
                self.wait(10_000)
        self.srv("connection.closed", code)
        self.srv("session.disconnected", code)

    def idle_end(self) -> None:
        self.wait(IDLE_TIMEOUT / 1000)
        self.srv("session.ended", CodeNumber.IDLE_TIMEOUT)

    def unopened_end(self) -> None:
        """Nobody got into the session while its link was valid: the server ends it."""
        self.wait(LINK_TTL / 1000)
        self.srv("session.ended", CodeNumber.CLOSED_REMOTELY, f'"reason":"{UNOPENED}"')

    def retries(self, count: int) -> int:
        """Terminal side of a dropped connection: 4102 then `count` attempts; time spent (ms)."""
        began = self.now
        self.term("connection.lost", CodeNumber.CONNECTION_SEVERED)
        self.term("message.shown", CodeNumber.CONNECTION_SEVERED)
        delay = 500
        for attempt in range(1, count + 1):
            self.wait(delay)
            self.term(
                "reconnect.attempt",
                CodeNumber.RECONNECTING,
                f'"attempt":{attempt},"delay_ms":{delay}',
            )
            delay = min(delay * 2, 10_000)
        return (self.now - began) // 1000

    def recover(self) -> None:
        drop = (
            CodeNumber.RECEIVE_TIMEOUTS if self.rng.random() < 0.3 else CodeNumber.CONNECTION_LOST
        )
        self.server_drop(drop)
        spent = self.retries(self.rng.randint(1, 3))
        self.wait(50, 400)
        self.conn += 1
        self.srv("connection.opened", attrs='"remote":"198.51.100.7"')
        self.accept(resume=True)
        recovery = spent + self.rng.randint(60, 500)
        self.term("reconnect.succeeded", attrs=f'"attempts":1,"recovery_ms":{recovery}')


Scenario = Callable[[_Session], str]


def _clean(code: int) -> Scenario:
    def run(s: _Session) -> str:
        s.connect()
        if s.rng.random() < 0.12:
            s.active(1, 60)
            s.recover()
        if code == CodeNumber.MAX_SESSION_DURATION:
            s.active(400, 470)
            s.srv("session.warning", attrs='"seconds_left":300')
            s.term("session.warning", attrs='"seconds_left":300')
            s.wait(300_000)
        else:
            s.active()
        s.end(code, APP_EXIT % 0 if code == CodeNumber.GUEST_LOGOFF else "")
        return "expected_end"

    return run


def _app_crash(s: _Session) -> str:
    """The session's app dies (a non-zero status, or a signal as a negative one): 4018."""
    s.connect()
    s.active()
    s.end(CodeNumber.GUEST_LOGOFF, APP_EXIT % s.rng.choice((1, 2, 139, -9, -11)))
    return "host_display_fault"


def _server_crash(s: _Session) -> str:
    """The server is killed mid-session: the terminal loses it and its resumes are refused once
    the server is back, which ends the sessions it left open (server/recovery.py)."""
    s.connect()
    s.active()
    s.term("connection.lost", CodeNumber.CONNECTION_SEVERED)
    s.term("message.shown", CodeNumber.CONNECTION_SEVERED)
    s.wait(500)
    s.term("reconnect.attempt", CodeNumber.RECONNECTING, '"attempt":1,"delay_ms":500')
    s.wait(5000, 60_000)
    attrs = f'"reason":{json.dumps(CRASH)},"state_at_crash":"active"'
    s.srv("session.ended", CodeNumber.SERVER_CONTROL_ERROR, attrs)
    s.wait(200, 2000)
    s.term("connection.closed", CodeNumber.SERVER_CONTROL_ERROR)
    return "server_crash"


def _takeover(s: _Session) -> str:
    """The user opens the session on a second device (duplicate_policy takeover): the first
    connection is closed with 4006, the new one resumes the session, which then ends well."""
    s.connect()
    s.active(2, 60)
    reason = '"reason":"taken over by a newer connection"'
    s.srv("connection.closed", CodeNumber.ALREADY_IN_SESSION, reason)
    s.srv("session.disconnected", CodeNumber.ALREADY_IN_SESSION, reason)
    s.term("connection.closed", CodeNumber.ALREADY_IN_SESSION)
    s.conn += 1
    s.srv("connection.opened", attrs='"remote":"203.0.113.9"')
    s.accept(resume=True)
    s.active()
    s.end(CodeNumber.USER_CLOSED)
    return "expected_end"


def _user_disconnect(s: _Session) -> str:
    """The user disconnects on purpose (the session is kept) and comes back later."""
    s.connect()
    s.active(2, 60)
    reason = '"reason":"terminal disconnect"'
    s.srv("connection.closed", attrs=reason)
    s.srv("session.disconnected", attrs=reason)
    s.term("connection.closed")
    s.wait(10_000, 300_000)
    s.attempt()
    s.accept(resume=True)
    s.active()
    s.end(CodeNumber.USER_CLOSED)
    return "expected_end"


def _resume_refused(s: _Session) -> str:
    """A drop, then the terminal's resume is refused (4002: its hello no longer matches, e.g. a
    launch link edited or an upgrade between attempts); it gives up and the session idles out."""
    s.connect()
    s.active()
    s.server_drop(CodeNumber.CONNECTION_LOST)
    s.retries(1)
    s.conn += 1
    s.srv("connection.opened", attrs='"remote":"198.51.100.7"')
    s.srv(
        "connection.rejected",
        CodeNumber.CONFIG_MISMATCH,
        '"field":"config","problem":"digest mismatch"',
    )
    s.srv("connection.closed", CodeNumber.CONFIG_MISMATCH)
    s.term("reconnect.gave_up", CodeNumber.RECONNECT_FAILED)
    s.term("message.shown", CodeNumber.CONFIG_MISMATCH)
    s.idle_end()
    return "configuration"


def _never_connected(s: _Session) -> str:
    s.launch()
    s.unopened_end()
    return "expected_end"


def _stun_only_then_fine(s: _Session) -> str:
    s.force_frp(8)
    s.launch()
    s.term("probe.stun", CodeNumber.STUN_UNREACHABLE)
    s.term("probe.turn", attrs='"rtt_ms":41')
    s.join_and_close()
    return "expected_end"


def _secondary_display(s: _Session) -> str:
    s.connect()
    s.active(5, 60)
    s.srv("connection.closed", CodeNumber.SECONDARY_DISPLAY_TIMEOUT, '"display":2')
    s.active()
    s.end(CodeNumber.USER_CLOSED)
    return "expected_end"


def _reconnect_exhausted(s: _Session) -> str:
    s.connect()
    s.active()
    s.server_drop(
        CodeNumber.CONNECTION_LOST if s.rng.random() < 0.7 else CodeNumber.RECEIVE_TIMEOUTS
    )
    s.retries(s.rng.randint(3, 8))
    s.term("reconnect.gave_up", CodeNumber.RECONNECT_FAILED)
    s.term("message.shown", CodeNumber.RECONNECT_FAILED)
    s.idle_end()
    return "reconnect_exhausted"


def _terminal_only_exhausted(s: _Session) -> str:
    s.conn = 1
    s.term("connection.established", attrs=f'"client":"{s.client}","resume":false')
    s.active()
    s.retries(s.rng.randint(3, 8))
    s.term("reconnect.gave_up", CodeNumber.RECONNECT_FAILED)
    return "reconnect_exhausted"


def _dropped(code: int) -> Scenario:
    def run(s: _Session) -> str:
        s.connect()
        s.active()
        s.server_drop(code)
        if code == CodeNumber.CONNECTION_LOST and s.rng.random() < 0.5:
            s.term("connection.lost", CodeNumber.CONNECTION_SEVERED)
        elif code != CodeNumber.CONNECTION_LOST:
            s.term("connection.closed", code)
        s.idle_end()
        return "network_loss"

    return run


def _connect_timeout(s: _Session) -> str:
    with_server = s.rng.random() < 0.5
    if with_server:
        s.launch()
    s.term("connect.attempt", attrs=f'"url":"wss://{s.id}"')
    s.wait(15_000)
    s.term("connect.failed", CodeNumber.CONNECT_TIMEOUT)
    s.term("message.shown", CodeNumber.CONNECT_TIMEOUT)
    if with_server:
        s.unopened_end()
    return "network_loss"


def _frp8_setup(event: str, code: int) -> Scenario:
    def run(s: _Session) -> str:
        s.force_frp(8)
        s.launch()
        s.attempt()
        s.term("probe.stun", attrs='"rtt_ms":23')
        s.wait(5000, 15_000)
        s.srv(event, code)
        s.term(event, code)
        s.term("connection.closed", code)
        s.unopened_end()
        return "nat_traversal"

    return run


def _frp8_fallback(s: _Session) -> str:
    """ICE fails (5006) and the terminal goes on over FRP7: a session that ends well."""
    s.force_frp(8)
    s.launch()
    s.term("connect.attempt", attrs=f'"url":"wss://{s.id}"')
    s.term("probe.turn", attrs='"rtt_ms":35')
    s.wait(5000, 15_000)
    s.term("ice.failed", CodeNumber.ICE_FAILED)
    s.term("transport.fallback", CodeNumber.ICE_FAILED, '"from_frp":8,"to_frp":7')
    s.term("message.shown", CodeNumber.ICE_FAILED)
    s.join_and_close()
    return "expected_end"


def _frp8_path_lost(s: _Session) -> str:
    """A firewall closes the UDP path mid-session: 4108, reconnects that get through
    signaling but not ICE (5006), 4106; the server's session idles out."""
    s.force_frp(8)
    s.connect()
    s.active()
    s.term("ice.disconnected", CodeNumber.ICE_DISCONNECTED)
    s.term("message.shown", CodeNumber.ICE_DISCONNECTED)
    s.server_drop(CodeNumber.RECEIVE_TIMEOUTS)
    for attempt in (1, 2):
        s.wait(300, 1000)
        s.term("reconnect.attempt", CodeNumber.RECONNECTING, f'"attempt":{attempt}')
        s.wait(2000, 15_000)
        s.term("ice.failed", CodeNumber.ICE_FAILED)
    s.term("reconnect.gave_up", CodeNumber.RECONNECT_FAILED)
    s.term("message.shown", CodeNumber.RECONNECT_FAILED)
    s.idle_end()
    return "nat_traversal"


def _stun_turn(s: _Session) -> str:
    s.force_frp(8)
    s.launch()
    s.term("connect.attempt", attrs=f'"url":"wss://{s.id}"')
    s.wait(3000)
    s.term("probe.stun", CodeNumber.STUN_UNREACHABLE)
    s.wait(2000)
    s.term("probe.turn", CodeNumber.TURN_UNREACHABLE)
    s.term("probe.failed", CodeNumber.STUN_TURN_UNREACHABLE)
    s.term("message.shown", CodeNumber.STUN_TURN_UNREACHABLE)
    if s.rng.random() < 0.6:
        s.unopened_end()
    return "nat_traversal"


def _turn_credentials(s: _Session) -> str:
    """A network that needs the relay, and the relay refuses the credentials (401): ICE fails."""
    s.force_frp(8)
    s.launch()
    s.term("connect.attempt", attrs=f'"url":"wss://{s.id}"')
    s.term("probe.stun", attrs='"rtt_ms":19')
    s.term(
        "probe.turn", CodeNumber.TURN_UNREACHABLE, f'"status":401,"error":{json.dumps(TURN_401)}'
    )
    s.wait(5000, 15_000)
    s.term("ice.failed", CodeNumber.ICE_FAILED)
    s.term("connection.closed", CodeNumber.ICE_FAILED)
    s.unopened_end()
    return "configuration"


def _signaling_timeout(s: _Session) -> str:
    s.force_frp(8)
    with_server = s.rng.random() < 0.5
    if with_server:
        s.launch()
    s.term("connect.attempt", attrs=f'"url":"wss://{s.id}"')
    s.wait(10_000)
    s.term("signaling.timeout", CodeNumber.SIGNALING_PEER_TIMEOUT)
    s.term("connection.closed", CodeNumber.SIGNALING_PEER_TIMEOUT)
    if with_server:
        s.unopened_end()
    return "server_fault"


def _ice_disconnected(s: _Session) -> str:
    s.force_frp(8)
    s.connect()
    s.active()
    s.term("ice.disconnected", CodeNumber.ICE_DISCONNECTED)
    s.term("message.shown", CodeNumber.ICE_DISCONNECTED)
    s.term("connection.closed", CodeNumber.ICE_DISCONNECTED)
    s.wait(2000, 30_000)
    s.server_drop(CodeNumber.CONNECTION_LOST)
    s.idle_end()
    return "nat_traversal"


def _start_failure(code: int, category: str) -> Scenario:
    def run(s: _Session) -> str:
        s.launch()
        s.attempt()
        s.accept()
        s.start()
        if code == CodeNumber.SERVER_START_ERROR:
            s.srv("error.exception", attrs='"where":"start","error":"RuntimeError"')
        s.end(code)
        return category

    return run


def _active_failure(code: int, category: str, frp8: bool = False) -> Scenario:
    def run(s: _Session) -> str:
        if frp8:
            s.force_frp(8)
        s.connect()
        s.active()
        if code == CodeNumber.VIDEO_STREAM_ERROR:
            for _ in range(s.rng.randint(3, 5)):
                s.srv("video.error", attrs='"error":"encoder stalled"')
                s.wait(500)
        else:
            s.srv("error.exception", attrs='"where":"control","error":"KeyError"')
        if code == CodeNumber.FRP8_ERROR:
            s.server_drop(code)
            s.term("connection.closed", code)
            s.idle_end()
        else:
            s.end(code)
        return category

    return run


def _rejected(code: int) -> Scenario:
    def run(s: _Session) -> str:
        s.launch()
        s.attempt()
        s.srv("connection.rejected", code)
        s.srv("connection.closed", code)
        s.term("connection.closed", code)
        if s.rng.random() < 0.5:
            s.unopened_end()
        else:
            s.srv("session.ended", code)
        return "configuration"

    return run


def _unknown_end(s: _Session) -> str:
    s.connect()
    s.active()
    s.end(4007)
    return "unknown"


def _still_open(s: _Session) -> str:
    s.connect()
    s.active()
    return "unknown"


SCENARIOS: tuple[tuple[float, Scenario], ...] = (
    (52.0, _clean(CodeNumber.USER_CLOSED)),
    (6.0, _clean(CodeNumber.GUEST_LOGOFF)),
    (2.0, _clean(CodeNumber.GUEST_SHUTDOWN)),
    (3.0, _clean(CodeNumber.CLOSED_REMOTELY)),
    (4.0, _clean(CodeNumber.MAX_SESSION_DURATION)),
    (3.0, _never_connected),
    (0.5, _stun_only_then_fine),
    (0.5, _secondary_display),
    (4.0, _reconnect_exhausted),
    (0.3, _terminal_only_exhausted),
    (2.5, _dropped(CodeNumber.CONNECTION_LOST)),
    (1.0, _dropped(CodeNumber.RECEIVE_TIMEOUTS)),
    (0.8, _dropped(CodeNumber.SEND_BUFFER_OVERFLOW)),
    (0.6, _dropped(CodeNumber.RECEIVE_ERROR)),
    (0.6, _dropped(CodeNumber.SEND_ERROR)),
    (1.5, _connect_timeout),
    (1.0, _stun_turn),
    (1.0, _frp8_setup("ice.failed", CodeNumber.ICE_FAILED)),
    (0.5, _frp8_setup("negotiation.timeout", CodeNumber.NEGOTIATION_TIMEOUT)),
    (0.5, _frp8_setup("peer.failed", CodeNumber.PEER_CONNECTION_FAILED)),
    (0.7, _signaling_timeout),
    (0.8, _ice_disconnected),
    (0.4, _frp8_fallback),
    (0.4, _frp8_path_lost),
    (0.5, _start_failure(CodeNumber.SERVER_START_ERROR, "server_fault")),
    (0.6, _start_failure(CodeNumber.DISPLAY_NOT_READY, "host_display_fault")),
    (0.6, _start_failure(CodeNumber.PROFILE_MOUNT_FAILED, "configuration")),
    (0.5, _active_failure(CodeNumber.SERVER_CONTROL_ERROR, "server_fault")),
    (0.5, _active_failure(CodeNumber.SERVER_AUX_ERROR, "server_fault")),
    (0.4, _active_failure(CodeNumber.FRP8_ERROR, "server_fault", frp8=True)),
    (0.6, _active_failure(CodeNumber.VIDEO_STREAM_ERROR, "host_display_fault")),
    (0.6, _rejected(CodeNumber.CONFIG_MISMATCH)),
    (0.6, _rejected(CodeNumber.ALREADY_IN_SESSION)),
    (0.4, _app_crash),
    (0.4, _server_crash),
    (0.6, _takeover),
    (0.8, _user_disconnect),
    (0.4, _resume_refused),
    (0.4, _turn_credentials),
    (0.2, _unknown_end),
    (0.2, _still_open),
)


def _corrupt(rng: random.Random, sample: str) -> str:
    """A line as real logs get them: cut by a crash, garbage, or a field of the wrong type."""
    kind = rng.randrange(4)
    if kind == 0:
        return sample[: rng.randint(10, len(sample) - 10)] + "\n"
    if kind == 1:
        return "\x00\x00 disk full: partial write\n"
    if kind == 2:
        return sample.replace('"frp":', '"frp":"v', 1).replace(',"event"', '","event"', 1)
    return sample.replace('"ts":"', '"ts":"yesterday ', 1)


def _open_out(path: Path) -> IO[str]:
    """Gzip at the fastest level: the fleet log is test data, written often and read once."""
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=1)
    return path.open("w", encoding="utf-8", buffering=1 << 20)


@dataclass
class FleetStats:
    sessions: int
    events: int
    lines: int
    bad_lines: int


def simulate(
    out: str | Path,
    sessions: int,
    seed: int = 1,
    target_events: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> FleetStats:
    """Write the fleet log to `out` (gzip if it ends in .gz) and its truth beside it.

    With `target_events`, sessions are added until at least that many events are written.
    `progress` is called with the number of events written so far after each batch.
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    weights = [w for w, _ in SCENARIOS]
    runs = [run for _, run in SCENARIOS]
    spacing = max(1, (7 * 86_400 * SECOND) // max(sessions, 1))
    truth: dict[str, str] = {}
    bad: list[int] = []
    stats = FleetStats(0, 0, 0, 0)
    with _open_out(path) as handle:
        index = 0
        while index < sessions or (target_events is not None and stats.events < target_events):
            lines: list[tuple[int, str]] = []
            for run in rng.choices(runs, weights, k=BATCH):
                if index >= sessions and (target_events is None or stats.events >= target_events):
                    break
                session = _Session(rng, index, seed, BASE_US + index * spacing)
                truth[session.id] = run(session)
                lines.extend(session.lines)
                stats.events += len(session.lines)
                index += 1
            lines.sort(key=itemgetter(0))
            texts = [text for _, text in lines]
            for i in range(len(texts) - 1):
                if rng.random() < 0.002:
                    texts[i], texts[i + 1] = texts[i + 1], texts[i]
            out_texts: list[str] = []
            for text in texts:
                if rng.random() < BAD_LINE_RATE:
                    out_texts.append(_corrupt(rng, text))
                    bad.append(stats.lines + len(out_texts))
                out_texts.append(text)
                if '"code":4007' in text:
                    bad.append(stats.lines + len(out_texts))
            handle.write("".join(out_texts))
            stats.lines += len(out_texts)
            if progress is not None:
                progress(stats.events)
    stats.sessions = index
    stats.bad_lines = len(bad)
    truth_path = Path(f"{path}.truth.json")
    truth_path.write_text(
        json.dumps(
            {
                "seed": seed,
                "sessions": stats.sessions,
                "events": stats.events,
                "lines": stats.lines,
                "bad_lines": bad,
                "categories": truth,
            },
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )
    return stats
