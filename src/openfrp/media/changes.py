"""Which parts of the screen changed since the last picture, with numpy.

Comparing the new picture with the previous one as 32-bit pixels, then folding the result
into 64x64 tiles, costs about 0.5 ms at 1280x720 here: cheaper than hashing the picture
(crc32 1.5 ms, blake2b 6 ms) and exact. A screen nobody touches is then never encoded.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

TILE = 64


def changed_tiles(
    previous: NDArray[np.uint8] | None, current: NDArray[np.uint8]
) -> NDArray[np.bool_]:
    """A (rows, columns) mask of the 64x64 tiles that differ; all set when there is no
    previous picture of the same size."""
    height, width = current.shape[:2]
    rows, columns = -(-height // TILE), -(-width // TILE)
    if previous is None or previous.shape != current.shape:
        return np.ones((rows, columns), np.bool_)
    if np.array_equal(previous, current):  # the common case, and the cheapest test
        return np.zeros((rows, columns), np.bool_)
    differs = previous.view(np.uint32)[:, :, 0] != current.view(np.uint32)[:, :, 0]
    bands = np.logical_or.reduceat(differs, np.arange(0, height, TILE), axis=0)
    tiles: NDArray[np.bool_] = np.logical_or.reduceat(bands, np.arange(0, width, TILE), axis=1)
    return tiles
