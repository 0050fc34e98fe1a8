"""What the probes mean: which code, which events. No I/O: the probes' results come in.

A STUN probe that gets no answer is 5009, a TURN allocation that fails (no answer, refused or
credentials rejected) is 5010, and both in the same check is 5019: the network most likely
blocks the helpers, and FRP7 over WebSocket is the way through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openfrp.codes import CodeNumber
from openfrp.protocol.actions import Log


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome; `detail` says why it failed, in words for the operator."""

    kind: str  # "stun" or "turn"
    server: str
    ok: bool
    rtt_ms: float | None = None
    detail: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


CODES = {"stun": CodeNumber.STUN_UNREACHABLE, "turn": CodeNumber.TURN_UNREACHABLE}
# A signaling probe fails as the terminal would: no hub (or a refused join) is a connection
# that never gets established (4101); a hub without the session's server peer is 4107.
SIGNALING_CODES = {
    "connect": CodeNumber.CONNECT_TIMEOUT,
    "join": CodeNumber.CONNECT_TIMEOUT,
    "peer": CodeNumber.SIGNALING_PEER_TIMEOUT,
}


def _code(result: ProbeResult) -> int:
    if result.kind == "signaling":
        return SIGNALING_CODES[result.attrs.get("stage", "connect")]
    return CODES[result.kind]


def verdict(results: list[ProbeResult]) -> tuple[int | None, list[Log]]:
    """The check's code (None when every probe passed) and the events to log for it. A failed
    signaling probe decides the code: without signaling no FRP8 session starts at all."""
    logs: list[Log] = []
    failed: set[str] = set()
    signaling: int | None = None
    for result in results:
        attrs = {"server": result.server, **result.attrs}
        if result.rtt_ms is not None:
            attrs["rtt_ms"] = round(result.rtt_ms, 1)
        code = None if result.ok else _code(result)
        if not result.ok:
            attrs["error"] = result.detail
            if result.kind == "signaling":
                signaling = code
            else:
                failed.add(result.kind)
        severity = "info" if result.ok else "error"
        logs.append(Log(f"probe.{result.kind}", code=code, severity=severity, attrs=attrs))
    if failed == {"stun", "turn"}:
        logs.append(
            Log("probe.failed", code=CodeNumber.STUN_TURN_UNREACHABLE, severity="error", attrs={})
        )
        return signaling or CodeNumber.STUN_TURN_UNREACHABLE, logs
    if failed:
        return signaling or CODES[failed.pop()], logs
    return signaling, logs
