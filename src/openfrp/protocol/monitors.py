"""Secondary monitors: extra connections of one session, each showing its own region.

The session's screen is a row of monitors: the primary connection's at x = 0, then each
secondary (monitor 1..3) to its right, in index order. Any change of that row (a monitor
added, removed or resized) is a display change that every secondary must acknowledge with
`display_ack` within `display_change_timeout`; one that does not is closed with 4028 and the
session goes on with the others. No I/O and no clock here: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SECONDARIES = 3
DEFAULT_SIZE = (1280, 720)


@dataclass(frozen=True)
class Monitor:
    """One monitor of the layout; `connection_id` is None for a primary not connected now."""

    index: int
    connection_id: str | None
    x: int
    y: int
    width: int
    height: int


class Monitors:
    def __init__(self) -> None:
        self.secondaries: dict[str, int] = {}  # connection id -> monitor index
        self.sizes: dict[int, tuple[int, int]] = {0: DEFAULT_SIZE}
        self.change_id = 0
        self.awaiting: dict[str, int] = {}  # connection id -> change id it must acknowledge

    def problem_with(self, index: int) -> str | None:
        """Why monitor `index` cannot join now, or None when it can."""
        if not 1 <= index <= MAX_SECONDARIES:
            return f"monitor must be 1 to {MAX_SECONDARIES}, got {index}"
        if index in self.secondaries.values():
            return f"monitor {index} is already shown by another window"
        return None

    def add(self, cid: str, index: int, size: tuple[int, int] | None) -> None:
        self.secondaries[cid] = index
        self.sizes[index] = size or self.sizes[0]

    def remove(self, cid: str) -> bool:
        index = self.secondaries.pop(cid, None)
        self.awaiting.pop(cid, None)
        if index is None:
            return False
        self.sizes.pop(index, None)
        return True

    def resize(self, index: int, size: tuple[int, int]) -> bool:
        """Record a monitor's new size; True when it changed."""
        if self.sizes.get(index) == size:
            return False
        self.sizes[index] = size
        return True

    def change(self) -> int:
        """Start a display change every secondary must acknowledge; returns its id."""
        self.change_id += 1
        self.awaiting = dict.fromkeys(self.secondaries, self.change_id)
        return self.change_id

    def acknowledged(self, cid: str, change_id: int) -> bool:
        """A secondary acknowledged `change_id`; True when that was the one awaited."""
        if self.awaiting.get(cid) != change_id:
            return False
        del self.awaiting[cid]
        return True

    def layout(self, primary: str | None) -> tuple[Monitor, ...]:
        owners = {index: cid for cid, index in self.secondaries.items()}
        monitors: list[Monitor] = []
        x = 0
        for index in sorted(self.sizes):
            width, height = self.sizes[index]
            cid = primary if index == 0 else owners.get(index)
            monitors.append(Monitor(index, cid, x, 0, width, height))
            x += width
        return tuple(monitors)


def size_of(value: object) -> tuple[int, int] | None:
    """A {width, height} object from a terminal as a size, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    width, height = value.get("width"), value.get("height")
    if type(width) is not int or type(height) is not int or width <= 0 or height <= 0:
        return None
    return width, height
