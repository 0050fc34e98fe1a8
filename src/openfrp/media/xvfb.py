"""Frames from a real Xvfb screen, read from its memory-mapped XWD framebuffer (-fbdir).

Xvfb keeps the screen as an XWD image in a file; reading it needs no X client library and
never blocks the X server. 24-bit TrueColor with 32 bits per pixel is what Xvfb writes.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

_HEADER = struct.Struct(">25I")


class XwdError(ValueError):
    """The framebuffer file is not the XWD layout this reader handles."""


class XvfbSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as handle:
            header = _HEADER.unpack(handle.read(_HEADER.size))
        (
            header_size,
            version,
            _fmt,
            depth,
            width,
            height,
            _xoff,
            byte_order,
            _unit,
            _bit,
            _pad,
            bits_per_pixel,
            bytes_per_line,
            *_rest,
        ) = header
        ncolors = header[19]
        if version != 7 or bits_per_pixel != 32 or depth != 24:
            raise XwdError(
                f"unsupported XWD: version {version}, {bits_per_pixel} bpp, depth {depth}"
            )
        if bytes_per_line != width * 4:
            raise XwdError(f"unsupported XWD: {bytes_per_line} bytes per line for {width} px")
        self.width = width
        self.height = height
        self._stride = bytes_per_line
        self._offset = header_size + ncolors * 12
        self._lsb_first = byte_order == 0

    def capture(self) -> bytes:
        """The screen as packed RGB."""
        with (
            self.path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as fb,
        ):
            size = self._stride * self.height
            pixels = fb[self._offset : self._offset + size]
        if len(pixels) != size:
            raise XwdError("framebuffer is shorter than its header says")
        rgb = bytearray(self.width * self.height * 3)
        red, green, blue = (2, 1, 0) if self._lsb_first else (1, 2, 3)
        rgb[0::3] = pixels[red::4]
        rgb[1::3] = pixels[green::4]
        rgb[2::3] = pixels[blue::4]
        return bytes(rgb)
