"""A built-in display: a moving gradient, so a session always has real frames to stream.

It has the same face as a real screen (grab() pixels as BGRX, resize()), which is what
lets every test that does not care about X run without Xvfb.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class SyntheticDisplay:
    def __init__(self, width: int = 64, height: int = 48) -> None:
        self.width = width
        self.height = height
        self.frame = 0

    def grab(self) -> NDArray[np.uint8]:
        """The next picture, (height, width, 4) BGRX: a gradient that moves every grab."""
        self.frame += 1
        shift = self.frame % 256
        pixels = np.empty((self.height, self.width, 4), np.uint8)
        pixels[:, :, 0] = 128
        pixels[:, :, 1] = shift
        pixels[:, :, 2] = (np.arange(self.width, dtype=np.int64) * 4 + shift) % 256
        pixels[:, :, 3] = 0
        return pixels

    def resize(self, width: int, height: int) -> tuple[int, int]:
        self.width, self.height = width, height
        return width, height

    def close(self) -> None:
        """Nothing to release."""
