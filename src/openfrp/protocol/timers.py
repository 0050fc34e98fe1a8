"""Named deadlines in milliseconds; the I/O layer sleeps until `next_deadline()`."""

from __future__ import annotations


def ms(seconds: float) -> int:
    """A settings duration in seconds as the whole milliseconds the machines count in."""
    return round(seconds * 1000)


class Deadlines:
    def __init__(self) -> None:
        self._at: dict[str, int] = {}

    def set(self, name: str, at_ms: int) -> None:
        self._at[name] = at_ms

    def cancel(self, name: str) -> None:
        self._at.pop(name, None)

    def clear(self) -> None:
        self._at.clear()

    def cancel_all_but(self, prefix: str) -> None:
        """Cancel every deadline except those whose name starts with `prefix`."""
        self._at = {n: at for n, at in self._at.items() if n.startswith(prefix)}

    def get(self, name: str) -> int | None:
        return self._at.get(name)

    def next_deadline(self) -> int | None:
        return min(self._at.values(), default=None)

    def pop_due(self, now_ms: int) -> list[str]:
        """Remove and return the names whose deadline has passed, earliest first."""
        due = sorted((at, name) for name, at in self._at.items() if at <= now_ms)
        for _, name in due:
            del self._at[name]
        return [name for _, name in due]
