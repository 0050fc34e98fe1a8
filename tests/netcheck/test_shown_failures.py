"""What the FRP8 terminal shows when its ICE preflight fails: the code's own line, then each
failed server with why, then the next step (as `openfrp netcheck` words them)."""

from __future__ import annotations

from openfrp import codes
from openfrp.netcheck.verdict import NO_RELAY, ProbeResult
from openfrp.protocol.terminal_connection import Show, show
from openfrp.terminal.preflight import judged

REJECTED = "credentials rejected (401): check the TURN user and password"


def shown_text(results: list[ProbeResult]) -> str:
    [shown] = [a for a in judged(results) if isinstance(a, Show)]
    return shown.text


def test_a_rejected_relay_is_named_under_5010_with_the_next_step() -> None:
    results = [
        ProbeResult("stun", "stun:h:3478", True, rtt_ms=1.0),
        ProbeResult("turn", "turn:h:3478", False, detail=REJECTED, attrs={"status": 401}),
    ]
    assert shown_text(results).split("\n") == [
        show(5010).text,
        f"  TURN turn:h:3478 failed: {REJECTED}",
        f"  next step: {codes.get(5010).action}",
    ]


def test_stun_failing_with_no_relay_configured_says_to_set_one_or_use_frp7() -> None:
    results = [ProbeResult("stun", "stun:h:3478", False, detail="no answer in 2.0 s")]
    assert shown_text(results).split("\n")[1:] == [
        "  STUN stun:h:3478 failed: no answer in 2.0 s",
        f"  next step: {NO_RELAY}",
    ]


def test_every_server_answering_shows_nothing() -> None:
    results = [ProbeResult("turn", "turn:h:3478", True, rtt_ms=1.0)]
    assert not [a for a in judged(results) if isinstance(a, Show)]
