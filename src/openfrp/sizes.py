"""Sizes as a person reads them: 64 KiB, 100 MiB, 1.5 GiB.

Refusal reasons, terminal lines and pop-ups say sizes this way; event-log attributes keep the
exact byte count. The browser terminal words them with `sizeText` (connection.js), which a
test holds to this one.
"""

from __future__ import annotations

UNITS = ("KiB", "MiB", "GiB", "TiB")


def size_text(count: int) -> str:
    """`count` bytes in the largest binary unit it fills: whole when exact, else to a tenth cut
    short (not rounded), so a file one byte under a 100 MiB limit reads 99.9 MiB, never the
    limit itself, and one just over it 100.0 MiB."""
    if count < 1024:
        return "1 byte" if count == 1 else f"{count} bytes"
    power = 1
    while power < len(UNITS) and count >= 1024 ** (power + 1):
        power += 1
    whole, rest = divmod(count, 1024**power)
    unit = UNITS[power - 1]
    if not rest:
        return f"{whole} {unit}"
    return f"{whole}.{rest * 10 // 1024**power} {unit}"
