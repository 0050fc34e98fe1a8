"""Sizes as a person reads them: binary units, exact when whole, a tenth cut short else."""

from __future__ import annotations

import pytest

from openfrp.sizes import size_text

MiB = 1024**2


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (64 * 1024, "64 KiB"),
        (120_000, "117.1 KiB"),
        (4 * MiB, "4 MiB"),
        (100 * MiB, "100 MiB"),
        (1536 * MiB, "1.5 GiB"),
        (1024**4, "1 TiB"),
        (1024**5, "1024 TiB"),
    ],
)
def test_sizes_are_said_in_the_largest_unit_they_fill(count: int, said: str) -> None:
    assert size_text(count) == said


def test_a_size_near_a_limit_never_reads_as_the_limit() -> None:
    """Cut short, not rounded: one byte under 100 MiB is not "100 MiB", one over is not
    either, so a refusal and its limit never read the same."""
    assert size_text(100 * MiB - 1) == "99.9 MiB"
    assert size_text(100 * MiB + 1) == "100.0 MiB"
    assert size_text(1025) == "1.0 KiB"
