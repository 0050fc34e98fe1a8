"""The FRP8 track's bitrate budget, sans-I/O: bytes sent and receiver reports in, when the
next frame may go out (time is passed in, in milliseconds).

aiortc encodes the track at the bitrate REMB asks for, but a codec has a quality ceiling:
VP8 at aiortc's qmax of 56 needs about 20 KB a frame of scrolling 720p text, about 4 Mbit/s
at 25 fps whatever the target. So, as FRP7's rate control does (media/rate.py), the track
spends a budget, a token bucket holding one second of the bitrate, and sends fewer frames
when they are bigger than the budget allows, never blurrier ones. The budget follows the
receiver's reports (RTCP receiver reports, read through aiortc's public getStats): loss above
LOSS or a round trip well above the best one seen lowers it; a calm second raises it again,
up to the screen's ceiling. Loss between CALM_LOSS and LOSS holds it where it is, as WebRTC's
own loss-based control does: a radio link or a busy router drops a few packets whatever the
rate, and NACK repairs them. Lowering the budget for 2 % of loss took a 5 %-lossy path to
150 kbit/s and 4.8 frames a second. Loss is counted over LOSS_WINDOW packets at least (the
receiver's cumulative counts), not read from each report: Chromium sends a report with every
NACK, over the few packets since the one before, and on a 5 %-lossy path those read 11, 16
and 33 % lost.
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_MS = 500  # at most one change per step
CALM_MS = 1000  # this long without loss or lag before each step up
LAG_MS = 250  # a round trip above the best one that counts as a queue
LOSS = 0.10  # the fraction of packets lost over a window that counts as congestion
CALM_LOSS = 0.02  # at most this lost, a report is calm
LOSS_WINDOW = 100  # packets the receiver expected, the least a loss figure is taken over
DOWN, UP = 0.7, 1.2
MAX_WAIT_MS = 1000  # a frame is never held back longer: a still screen's repeat must go


@dataclass
class TrackBudget:
    max_bitrate: int
    min_bitrate: int = 150_000
    bitrate: int = 0
    _tokens: float = 0.0
    _filled_at: int = 0
    _sent: int | None = None  # the sender's byte count last seen
    _best_rtt: int | None = None
    _last_change: int = 0
    _calm_since: int = 0
    _counted: tuple[int, int] | None = None  # (expected, lost) where the loss window began
    loss: float = 0.0  # the fraction lost over the last whole window

    def __post_init__(self) -> None:
        self.bitrate = self.bitrate or self.max_bitrate
        self._tokens = float(self.bitrate)

    def ceiling(self, max_bitrate: int) -> None:
        """The screen's size changed: so does the most the budget may reach."""
        self.max_bitrate = max_bitrate
        self.bitrate = min(self.bitrate, max_bitrate)

    def _refill(self, now_ms: int) -> None:
        gained = self.bitrate * max(0, now_ms - self._filled_at) / 1000
        self._tokens = min(float(self.bitrate), self._tokens + gained)
        self._filled_at = now_ms

    def sent(self, total_bytes: int, now_ms: int) -> None:
        """The sender's count of bytes sent so far (a frame's bytes follow its encoding)."""
        self._refill(now_ms)
        if self._sent is not None:
            self._tokens -= max(0, total_bytes - self._sent) * 8
        self._sent = total_bytes

    def wait_ms(self, now_ms: int) -> int:
        """How long until the budget has room for another frame; 0: now."""
        self._refill(now_ms)
        if self._tokens > 0:
            return 0
        return min(MAX_WAIT_MS, int(-self._tokens * 1000 / self.bitrate) + 1)

    def report(self, expected: int, lost: int, rtt_ms: int | None, now_ms: int) -> bool:
        """A new receiver report: packets it expected and lost in all (cumulative), the round
        trip; True when the budget changed."""
        if rtt_ms is not None and (self._best_rtt is None or rtt_ms < self._best_rtt):
            self._best_rtt = rtt_ms
        if self._counted is None or expected < self._counted[0]:  # the first, or counts anew
            self._counted = (expected, lost)
        counted = self._counted
        heavy = False
        if expected - counted[0] >= LOSS_WINDOW:
            self.loss = max(0, lost - counted[1]) / (expected - counted[0])
            self._counted = (expected, lost)
            heavy = self.loss > LOSS
        congested = heavy or (
            rtt_ms is not None and self._best_rtt is not None and rtt_ms > self._best_rtt + LAG_MS
        )
        before = self.bitrate
        if congested:
            self._calm_since = now_ms
            if now_ms - self._last_change >= STEP_MS:
                self.bitrate = max(self.min_bitrate, int(self.bitrate * DOWN))
        elif self.loss > CALM_LOSS:
            self._calm_since = now_ms
        elif now_ms - self._calm_since >= CALM_MS and now_ms - self._last_change >= STEP_MS:
            self.bitrate = min(self.max_bitrate, int(self.bitrate * UP))
            self._calm_since = now_ms
        if self.bitrate == before:
            return False
        self._last_change = now_ms
        self._tokens = min(self._tokens, float(self.bitrate))
        return True
