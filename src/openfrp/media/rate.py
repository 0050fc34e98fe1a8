"""The stream's rate control, sans-I/O: frame sizes sent and frame_ack times in, the target
bitrate and frame rate out (time is passed in, in milliseconds).

A path that keeps up acknowledges each frame about one round trip after it was sent. When
acknowledgements lag well behind the best delay seen (a queue is building somewhere), the
bitrate comes down first, towards what the path delivered, then the frame rate; when they
return to normal for a while, the frame rate recovers first, then the bitrate. A new
connection has seen no lag yet, so its bitrate climbs fast (doubling every step) until the
first lag, as a resumed session must not crawl back from where a bad path once left it.

The bitrate is also a budget (a token bucket holding one second of it): the encoder's quality
floor can make frames bigger than the bitrate asks for, and then fewer frames go out instead
of blurrier ones. Exact (palette) frames share it with the video encoder, whose CBR would
otherwise fill the whole bitrate: the encoder is given what they left over the last second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

STEP_MS = 500  # at most one change per step
CALM_MS = 1000  # this long without lag before each step up
LAG_MS = 250  # acknowledgement delay above the best one that counts as a queue
WINDOW_MS = 2000  # what "recent" means for delays and delivered bits
DOWN, UP, FPS_UP = 0.7, 1.2, 1.5
START_UP = 2.0  # the step up before the connection's first lag


@dataclass
class RateControl:
    max_bitrate: int
    max_fps: int
    min_bitrate: int = 150_000
    min_fps: int = 2
    bitrate: int = 0
    fps: int = 0
    _sent: dict[int, tuple[int, int]] = field(default_factory=dict)
    _acks: deque[tuple[int, int, int]] = field(default_factory=deque)  # (at, delay, bytes)
    _best_delay: int | None = None
    _last_change: int = 0
    _calm_since: int = 0
    _lagged: bool = False  # this connection has seen a lag: climb carefully
    _tokens: float = 0.0  # bits the budget still allows now
    _filled_at: int = 0
    _exact: deque[tuple[int, int]] = field(default_factory=deque)  # (at, bytes) exact frames

    def __post_init__(self) -> None:
        self.bitrate = self.bitrate or self.max_bitrate
        self.fps = self.fps or self.max_fps
        self._tokens = float(self.bitrate)

    def _refill(self, now_ms: int) -> None:
        gained = self.bitrate * max(0, now_ms - self._filled_at) / 1000
        self._tokens = min(float(self.bitrate), self._tokens + gained)
        self._filled_at = now_ms

    def allow(self, now_ms: int) -> bool:
        """Whether the bitrate budget has room for another frame now."""
        self._refill(now_ms)
        return self._tokens > 0

    def reset(self, now_ms: int) -> None:
        """A new connection: nothing in flight, the path unknown again."""
        self._sent.clear()
        self._acks.clear()
        self._best_delay = None
        self._calm_since = now_ms
        self._lagged = False

    def sent(self, frame: int, size: int, now_ms: int, exact: bool = False) -> None:
        self._refill(now_ms)
        if exact:
            self._exact.append((now_ms, size))
        self._tokens -= size * 8
        self._sent[frame] = (now_ms, size)
        if len(self._sent) > 64:  # frames lost with a connection never come back
            del self._sent[min(self._sent)]

    def video_bitrate(self, now_ms: int) -> int:
        """The bitrate less what exact frames spent over the last second."""
        while self._exact and self._exact[0][0] <= now_ms - 1000:
            self._exact.popleft()
        spent = 8 * sum(size for _, size in self._exact)
        return max(self.min_bitrate, self.bitrate - spent)

    def _sending_ms(self, size: int) -> int:
        """How long a frame of `size` bytes takes at the target bitrate: not a queue."""
        return size * 8 * 1000 // max(1, self.bitrate)

    def acked(self, frame: int, now_ms: int) -> None:
        """Acknowledgements come in order: frames before `frame` still unacknowledged never
        reached the terminal's decoder and must not count as waiting."""
        sent = self._sent.pop(frame, None)
        if sent is None:
            return
        for lost in [n for n in self._sent if n < frame]:
            del self._sent[lost]
        delay = now_ms - sent[0]
        self._acks.append((now_ms, delay - self._sending_ms(sent[1]), sent[1]))
        if self._best_delay is None or delay < self._best_delay:
            self._best_delay = delay

    def window(self, least: int, most: int) -> int:
        """Pictures that may be unacknowledged at once: as many as the frame rate sends in the
        path's best acknowledgement delay, and one more, between `least` and `most`. A queue
        does not raise it (the best delay is the path's own), and the frame rate it follows
        comes down when acknowledgements lag. A path 80 ms away with room to spare drew 11
        frames a second of a moving window at two pictures in flight, 22-24 without the delay."""
        if self._best_delay is None:
            return least
        return max(least, min(most, -(-self._best_delay * self.fps // 1000) + 1))

    def _lagging(self, now_ms: int) -> bool:
        if self._best_delay is None:
            return False
        limit = self._best_delay + LAG_MS
        waiting = [now_ms - at - self._sending_ms(size) for at, size in self._sent.values()]
        recent = [delay for at, delay, _ in self._acks if at >= now_ms - STEP_MS]
        return max(waiting, default=0) > limit or (bool(recent) and min(recent) > limit)

    def update(self, now_ms: int) -> bool:
        """Step the targets if it is time; True when bitrate or fps changed."""
        while self._acks and self._acks[0][0] < now_ms - WINDOW_MS:
            self._acks.popleft()
        if now_ms - self._last_change < STEP_MS:
            return False
        before = (self.bitrate, self.fps)
        if self._lagging(now_ms):
            self._calm_since, self._lagged = now_ms, True
            if self.bitrate > self.min_bitrate:
                delivered = sum(size for *_, size in self._acks) * 8 * 1000 // WINDOW_MS
                lower = int(self.bitrate * DOWN)
                if delivered > 0:  # towards what the path delivered, by at most half
                    lower = max(self.bitrate // 2, min(lower, int(delivered * 0.85)))
                self.bitrate = max(self.min_bitrate, lower)
            else:
                self.fps = max(self.min_fps, int(self.fps * DOWN))
        elif now_ms - self._calm_since >= (CALM_MS if self._lagged else STEP_MS):
            if self.fps < self.max_fps:
                self.fps = min(self.max_fps, int(self.fps * FPS_UP) + 1)
            else:
                up = UP if self._lagged else START_UP
                self.bitrate = min(self.max_bitrate, int(self.bitrate * up))
            self._calm_since = now_ms
        if (self.bitrate, self.fps) == before:
            return False
        self._last_change = now_ms
        return True
