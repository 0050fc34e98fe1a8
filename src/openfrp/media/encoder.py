"""Encoders: a screen picture (BGRX numpy array) in, one wire frame's payload out."""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import NDArray

from openfrp.media.wire import CODEC_RGB_ZLIB, FLAG_KEY, pack_frame


def rgb_zlib(number: int, pixels: NDArray[np.uint8]) -> bytes:
    """A whole wire frame of packed RGB, zlib level 1: every frame is a keyframe."""
    height, width = pixels.shape[:2]
    rgb = np.ascontiguousarray(pixels[:, :, 2::-1])
    return pack_frame(number, width, height, CODEC_RGB_ZLIB, FLAG_KEY, zlib.compress(rgb.data, 1))
