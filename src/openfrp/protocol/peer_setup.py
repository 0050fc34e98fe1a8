"""One FRP8 connection attempt's setup: signaling, offer/answer, ICE, DTLS and the data channel.

The WebRTC library reports trouble late or never (ICE that never works shows as `failed`
after about a minute, a stalled DTLS handshake not at all), so each phase runs under its own
timer from the session settings and ends the attempt with the code the table gives that phase:

    signaling --peer id--> gathering --offer sent--> negotiating --answer--> connecting --> open
      4107                   5006                      5007                    5006 / 5008

Gathering (the local ICE candidates: STUN and TURN answers, or their time-outs) is its own
phase, so a blocked UDP path shows as ICE (5006), never as a slow answer (5007). On the
terminal the whole setup also runs inside a budget a little shorter than connect_timeout, so
a phase that would outlast the attempt ends with its own code in time for the fallback to
FRP7. Both sides use it: the terminal from its `join`, the server from the offer it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from openfrp.codes import CodeNumber
from openfrp.protocol.timers import ms
from openfrp.settings import SessionSettings


class Phase(StrEnum):
    SIGNALING = "signaling"
    GATHERING = "gathering"
    NEGOTIATING = "negotiating"
    CONNECTING = "connecting"
    OPEN = "open"
    FAILED = "failed"


@dataclass(frozen=True)
class SetupFailed:
    """The attempt is over: its code, the event that records it, and what was seen."""

    code: int
    event: str
    attrs: dict[str, Any] = field(default_factory=dict)


ICE_UP = ("connected", "completed")


class PeerSetup:
    def __init__(
        self,
        settings: SessionSettings,
        now_ms: int,
        phase: Phase = Phase.SIGNALING,
        budget_ms: int | None = None,
    ) -> None:
        """`budget_ms`: the whole setup must be done by `now_ms + budget_ms` (the terminal's)."""
        self.settings = settings
        self.phase = Phase.SIGNALING
        self.began_at = now_ms
        self.ends_by = None if budget_ms is None else now_ms + budget_ms
        self.ice_up_at: int | None = None
        self.ice_states: list[str] = []
        self.candidates: dict[str, int] = {}
        self._deadline: int | None = None
        self._enter(phase, now_ms)

    def next_deadline(self) -> int | None:
        return self._deadline

    # -- inputs ----------------------------------------------------------------------------

    def peer_found(self, now_ms: int) -> None:
        """Signaling named the server peer; gathering the offer's candidates starts now."""
        if self.phase is Phase.SIGNALING:
            self._enter(Phase.GATHERING, now_ms)

    def gathered(self, candidates: dict[str, int], now_ms: int) -> None:
        """The offer, with its candidates (count per type: host, srflx, relay), goes out."""
        if self.phase is Phase.GATHERING:
            self.candidates = dict(candidates)
            self._enter(Phase.NEGOTIATING, now_ms)

    def answered(self, now_ms: int) -> None:
        """The answer is applied: from here ICE, DTLS and SCTP must bring the channel up."""
        if self.phase is Phase.NEGOTIATING:
            self._enter(Phase.CONNECTING, now_ms)

    def ice_state(self, state: str, now_ms: int) -> SetupFailed | None:
        self.ice_states.append(state)
        if self.phase is not Phase.CONNECTING:
            return None
        if state in ICE_UP and self.ice_up_at is None:
            self.ice_up_at = now_ms
        if state == "failed":
            return self._fail(CodeNumber.ICE_FAILED, "ice.failed", now_ms, "ICE reported failed")
        return None

    def connection_state(self, state: str, now_ms: int) -> SetupFailed | None:
        """The peer connection's state; `failed` after ICE worked is DTLS or SCTP failing."""
        if self.phase is not Phase.CONNECTING or state != "failed":
            return None
        if self.ice_up_at is None:
            return self._fail(
                CodeNumber.ICE_FAILED, "ice.failed", now_ms, "peer connection failed before ICE"
            )
        return self._fail(
            CodeNumber.PEER_CONNECTION_FAILED,
            "peer.failed",
            now_ms,
            "peer connection failed after ICE",
        )

    def channel_open(self, now_ms: int) -> int:
        """The control channel is open; returns how long the setup took, in ms."""
        self.phase = Phase.OPEN
        self._deadline = None
        return now_ms - self.began_at

    def tick(self, now_ms: int) -> SetupFailed | None:
        if self._deadline is None or now_ms < self._deadline:
            return None
        if self.ends_by is not None and now_ms >= self.ends_by:
            budget = {"setup_budget_s": (self.ends_by - self.began_at) / 1000}
        else:
            budget = {}
        if self.phase is Phase.SIGNALING:
            return self._fail(
                CodeNumber.SIGNALING_PEER_TIMEOUT,
                "signaling.timeout",
                now_ms,
                "no server peer id from signaling",
                signaling_peer_timeout_s=self.settings.signaling_peer_timeout,
                **budget,
            )
        if self.phase is Phase.GATHERING:
            return self._fail(
                CodeNumber.ICE_FAILED,
                "ice.failed",
                now_ms,
                "gathering ICE candidates did not finish",
                ice_failed_after_s=self.settings.ice_failed_after,
                **budget,
            )
        if self.phase is Phase.NEGOTIATING:
            return self._fail(
                CodeNumber.NEGOTIATION_TIMEOUT,
                "negotiation.timeout",
                now_ms,
                "no answer to the offer",
                negotiation_timeout_s=self.settings.negotiation_timeout,
                **budget,
            )
        if self.ice_up_at is None:
            return self._fail(
                CodeNumber.ICE_FAILED,
                "ice.failed",
                now_ms,
                "no candidate pair worked",
                ice_failed_after_s=self.settings.ice_failed_after,
                **budget,
            )
        return self._fail(
            CodeNumber.PEER_CONNECTION_FAILED,
            "peer.failed",
            now_ms,
            "ICE connected but the secure channel did not open",
            ice_failed_after_s=self.settings.ice_failed_after,
            **budget,
        )

    # -- internals -------------------------------------------------------------------------

    def _enter(self, phase: Phase, now_ms: int) -> None:
        self.phase = phase
        timeout = {
            Phase.SIGNALING: self.settings.signaling_peer_timeout,
            Phase.GATHERING: self.settings.ice_failed_after,
            Phase.NEGOTIATING: self.settings.negotiation_timeout,
            Phase.CONNECTING: self.settings.ice_failed_after,
        }[phase]
        self._deadline = now_ms + ms(timeout)
        if self.ends_by is not None:
            self._deadline = min(self._deadline, self.ends_by)

    def _fail(self, code: int, event: str, now_ms: int, why: str, **extra: Any) -> SetupFailed:
        phase = self.phase
        self.phase = Phase.FAILED
        self._deadline = None
        attrs = {
            "phase": phase.value,
            "reason": why,
            "elapsed_ms": now_ms - self.began_at,
            "ice_states": self.ice_states[-6:],
            "candidates": self.candidates,
            **extra,
        }
        return SetupFailed(code, event, attrs)
