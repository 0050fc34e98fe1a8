"""What the probes mean: which code, which events. No I/O: the probes' results come in.

A STUN probe that gets no answer is 5009, a TURN allocation that fails (no answer, refused or
credentials rejected) is 5010, and both in the same check, with no STUN or TURN server
answering at all, is 5019: the network most likely blocks the helpers, and FRP7 over WebSocket
is the way through. A relay allocated over TCP while UDP is dropped is a way through: no 5019.
A link whose ticket cannot be had decides the code alone, as the terminal given it would end:
4101 when its server is not reached, an ended session's final code, else the 4002 a hello
nobody can place gets. `failure_lines` words the failed probes for a terminal's pop-up, as
netcheck does, so the person sees which server failed and why, not only the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.protocol.actions import Log


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome; `detail` says why it failed, in words for the operator."""

    kind: str  # "stun", "turn", "signaling", "frp7" or "link"
    server: str
    ok: bool
    rtt_ms: float | None = None
    detail: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


# A STUN server unanswered with no TURN server to fall back on: where UDP does not pass, FRP8
# has no way through (its ICE fails with 5006), whatever 5009 says of the connection.
NO_RELAY = (
    "where UDP does not pass, FRP8 has no relay to go through: set server.turn_url "
    "(turn:HOST:PORT?transport=tcp or turns:HOST:443) or use FRP7 (WebSocket)"
)

CODES = {"stun": CodeNumber.STUN_UNREACHABLE, "turn": CodeNumber.TURN_UNREACHABLE}
# An FRP7 session's WebSocket that cannot be opened is a connection never established.
WEBSOCKET_CODE = CodeNumber.CONNECT_TIMEOUT
# A signaling probe fails as the terminal would: no hub (or a refused join) is a connection
# that never gets established (4101); a hub without the session's server peer is 4107.
SIGNALING_CODES = {
    "connect": CodeNumber.CONNECT_TIMEOUT,
    "join": CodeNumber.CONNECT_TIMEOUT,
    "peer": CodeNumber.SIGNALING_PEER_TIMEOUT,
}


def link_code(status: int | None, final_code: object) -> int:
    """The code for a link's ticket refused with HTTP `status` (None: no answer at all)."""
    if status is None or status >= 500:  # nothing answers, or only a front end does
        return CodeNumber.CONNECT_TIMEOUT
    if isinstance(final_code, int) and codes.lookup(final_code) is not None:
        return final_code  # the session has ended (410)
    return CodeNumber.CONFIG_MISMATCH  # an expired or revoked token, or no such session


def _code(result: ProbeResult) -> int:
    if result.kind == "link":
        return link_code(result.attrs.get("status"), result.attrs.get("final_code"))
    if result.kind == "signaling":
        return SIGNALING_CODES[result.attrs.get("stage", "connect")]
    if result.kind == "frp7":
        return WEBSOCKET_CODE
    return CODES[result.kind]


def verdict(results: list[ProbeResult]) -> tuple[int | None, list[Log]]:
    """The check's code (None when every probe passed) and the events to log for it. A failed
    signaling probe (or an FRP7 session's WebSocket) decides the code: without it no session
    starts at all."""
    logs: list[Log] = []
    failed: set[str] = set()
    passed: set[str] = set()
    unreachable: int | None = None  # the session's own path failed
    for result in results:
        attrs = {"server": result.server, **result.attrs}
        if result.rtt_ms is not None:
            attrs["rtt_ms"] = round(result.rtt_ms, 1)
        code = None if result.ok else _code(result)
        if not result.ok:
            attrs["error"] = result.detail
            if result.kind in ("signaling", "frp7", "link"):
                unreachable = code
            else:
                failed.add(result.kind)
        elif result.kind in CODES:
            passed.add(result.kind)
        severity = "info" if result.ok else "error"
        logs.append(Log(f"probe.{result.kind}", code=code, severity=severity, attrs=attrs))
    if failed == {"stun", "turn"} and not passed:  # no helper at all answered
        logs.append(
            Log("probe.failed", code=CodeNumber.STUN_TURN_UNREACHABLE, severity="error", attrs={})
        )
        return unreachable or CodeNumber.STUN_TURN_UNREACHABLE, logs
    # A kind none of whose servers answered names the check, TURN first (the relay is what a
    # restricted network needs); a relay allocated over TCP while UDP is dropped is no 5019.
    ranked = sorted(failed, key=lambda kind: (kind in passed, kind != "turn"))
    if ranked:
        return unreachable or CODES[ranked[0]], logs
    return unreachable, logs


def no_relay(results: list[ProbeResult]) -> bool:
    """A STUN probe failed and no TURN server was probed: nothing to fall back on."""
    stun_failed = any(r.kind == "stun" and not r.ok for r in results)
    return stun_failed and not any(r.kind == "turn" for r in results)


def failure_lines(results: list[ProbeResult], code: int) -> list[str]:
    """The lines shown under `code`'s own message: each failed probe's server and why, then
    the next step (NO_RELAY where it applies, else the code's). The page's peer_setup.js
    `iceLines` words them the same."""
    lines = [f"{r.kind.upper()} {r.server} failed: {r.detail}" for r in results if not r.ok]
    step = NO_RELAY if no_relay(results) else codes.get(code).action
    return [*lines, f"next step: {step}"]
