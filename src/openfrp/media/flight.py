"""Pictures on their way to the terminal, not yet acknowledged.

A captured picture may travel as two frames (its palette tiles, then H.264 beside them), and
the terminal acknowledges each frame. The path is judged by pictures: counted by frames, a
mixed picture (text beside a video) took both places, so the next capture waited for the
terminal to draw the last one.
"""

from __future__ import annotations

KEPT = 64  # frames whose acknowledgement never comes (a lost terminal) are not kept past this


class InFlight:
    def __init__(self) -> None:
        self._picture: dict[int, int] = {}  # frame number -> its picture
        self._left: dict[int, int] = {}  # picture -> its frames not yet acknowledged

    def __len__(self) -> int:
        """How many pictures have a frame not yet acknowledged."""
        return len(self._left)

    def clear(self) -> None:
        self._picture.clear()
        self._left.clear()

    def sent(self, frame: int, picture: int) -> None:
        self._picture[frame] = picture
        self._left[picture] = self._left.get(picture, 0) + 1
        if len(self._picture) > KEPT:
            self.done(next(iter(self._picture)))

    def done(self, frame: int) -> None:
        """Frame `frame` was acknowledged, or dropped before it went out."""
        picture = self._picture.pop(frame, None)
        if picture is None:
            return
        left = self._left[picture] - 1
        if left:
            self._left[picture] = left
        else:
            del self._left[picture]
