"""What the probes mean: which code, which events. No I/O: the probes' results come in.

A STUN probe that gets no answer is 5009, a TURN allocation that fails (no answer, refused or
credentials rejected) is 5010, and both in the same check is 5019: the network most likely
blocks the helpers, and FRP7 over WebSocket is the way through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


CODES = {"stun": 5009, "turn": 5010}


def verdict(results: list[ProbeResult]) -> tuple[int | None, list[Log]]:
    """The check's code (None when every probe passed) and the events to log for it."""
    logs: list[Log] = []
    failed: set[str] = set()
    for result in results:
        attrs = {"server": result.server, **result.attrs}
        if result.rtt_ms is not None:
            attrs["rtt_ms"] = round(result.rtt_ms, 1)
        if not result.ok:
            attrs["error"] = result.detail
            failed.add(result.kind)
        code = None if result.ok else CODES[result.kind]
        severity = "info" if result.ok else "error"
        logs.append(Log(f"probe.{result.kind}", code=code, severity=severity, attrs=attrs))
    if failed == {"stun", "turn"}:
        logs.append(Log("probe.failed", code=5019, severity="error", attrs={}))
        return 5019, logs
    if failed:
        return CODES[failed.pop()], logs
    return None, logs
