"""The Python terminal's commands (terminal/script.py): held until the first connection,
run one after another, a bad `wait` and a failed command said (the rest still run), past
MAX_WAITING the input waits (nothing dropped), and the end of the input leaves once
everything before it is done; a size the session fits to its limits is said with the one it
gave."""

from __future__ import annotations

import asyncio

import pytest

from openfrp.terminal import script
from openfrp.terminal.script import Commands, size_note


def test_commands_wait_for_the_connection_run_in_order_and_the_end_leaves() -> None:
    done: list[str] = []
    said: list[str] = []

    async def run_one(line: str) -> None:
        await asyncio.sleep(0.05 if line == "slow" else 0)
        if line == "broken":
            raise OSError("no such file")
        done.append(line)

    async def main() -> None:
        commands = Commands(run_one, lambda: done.append("left"), said.append)
        task = asyncio.create_task(commands.run())
        for line in ("slow", "wait soon", "", "broken", "wait 0.01", "fast", None):
            await commands.put(line)
        await asyncio.sleep(0.05)
        assert done == []  # not connected yet
        commands.connected.set()
        await asyncio.wait_for(task, 2)

    asyncio.run(main())
    assert done == ["slow", "fast", "left"]
    assert said[0] == "wait: expected seconds from 0 to 3600, got 'soon'"
    assert said[1] == "broken failed: OSError: no such file"
    assert said[-1] == script.ENDED


def run_connected(lines: tuple[str | None, ...]) -> tuple[list[str], int]:
    """Put `lines` in, connect, and run them all: what was said (a command that ran says
    "ran LINE"), and how many times the runner left."""
    said: list[str] = []
    left: list[bool] = []

    async def run_one(line: str) -> None:
        said.append(f"ran {line}")

    async def main() -> None:
        commands = Commands(run_one, lambda: left.append(True), said.append)
        for line in lines:
            await commands.put(line)
        commands.connected.set()
        await asyncio.wait_for(commands.run(), 2)

    asyncio.run(main())
    return said, len(left)


def test_past_the_bound_the_input_waits_and_nothing_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(script, "MAX_WAITING", 2)
    said: list[str] = []

    async def run_one(line: str) -> None:
        said.append(f"ran {line}")

    async def main() -> None:
        commands = Commands(run_one, lambda: said.append("left"), said.append)
        running = asyncio.create_task(commands.run())
        await commands.put("a")
        await commands.put("b")
        third = asyncio.create_task(commands.put("c"))
        await asyncio.sleep(0.05)
        assert not third.done()  # two held until connected: the input's reader waits
        commands.connected.set()
        await asyncio.wait_for(third, 2)
        await commands.put(None)
        await asyncio.wait_for(running, 2)

    asyncio.run(main())
    assert said == ["ran a", "ran b", "ran c", script.ENDED, "left"]


@pytest.mark.parametrize("leave", ["close", "disconnect"])
def test_the_end_after_a_close_or_disconnect_adds_nothing(leave: str) -> None:
    """`close` then the end of the input: the close stands. The end left again, which hung up
    before the close went out (the session stayed open), and said it stays open."""
    said, left = run_connected(("wait 0", leave, None))
    assert said == [f"ran {leave}"] and left == 0


@pytest.mark.parametrize(
    ("asked", "given", "said"),
    [
        ((640, 480), (640, 480), None),
        ((10, 10), (320, 200), "the session's screen is 320x200 (its smallest)"),
        ((99999, 99999), (1920, 1080), "the session's screen is 1920x1080 (its largest)"),
        ((801, 601), (800, 600), "the session's screen is 800x600 (even sizes only)"),
        ((10, 99999), (320, 1080), "the session's screen is 320x1080"),
    ],
)
def test_a_size_the_session_fits_otherwise_is_said_with_why(
    asked: tuple[int, int], given: tuple[int, int], said: str | None
) -> None:
    assert size_note(asked, given) == said
