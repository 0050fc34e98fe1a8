"""The Python terminal's input and upload commands checked before anything goes: numbers
the input message cannot carry are usage errors (the server closes with 4024 on them), a long
scroll goes as several wheel messages, and an upload takes regular files only (opening a FIFO
blocked the terminal for good)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from openfrp.protocol.input import (
    MAX_COORD,
    MAX_WHEEL_STEPS,
    WheelInput,
    input_message,
    parse_input,
)
from openfrp.terminal import keyboard
from openfrp.terminal.desk import TerminalDesk
from openfrp.terminal.keyboard import input_command


def sent_events(word: str, rest: str) -> list[Any]:
    """The events of a command, each as the server parses it (MessageError, a 4024, if not)."""
    return [parse_input(input_message(event)) for event in input_command(word, rest) or []]


def test_a_scroll_past_one_message_goes_as_several_and_each_one_fits() -> None:
    assert sent_events("scroll", "200") == [WheelInput(0, MAX_WHEEL_STEPS)] * 3 + [WheelInput(0, 8)]
    assert sent_events("scroll", "-65") == [WheelInput(0, -MAX_WHEEL_STEPS), WheelInput(0, -1)]
    assert sent_events("scroll", str(keyboard.MAX_SCROLL))[-1] == WheelInput(0, 1000 % 64)
    assert sent_events("scroll", "0") == []


@pytest.mark.parametrize(
    ("word", "rest", "said"),
    [
        (
            "move",
            "99999 1",
            f"move: coordinate 99999 out of range ({1 - MAX_COORD} to {MAX_COORD - 1})",
        ),
        ("move", f"1 {-MAX_COORD}", f"move: coordinate {-MAX_COORD} out of range"),
        ("click", f"{MAX_COORD} 0 3", f"click: coordinate {MAX_COORD} out of range"),
        ("scroll", "99999999", "scroll: more than 1000 steps (99999999)"),
        ("scroll", "-1001", "scroll: more than 1000 steps (-1001)"),
    ],
)
def test_a_number_the_input_message_cannot_carry_is_a_usage_line(
    word: str, rest: str, said: str
) -> None:
    with pytest.raises(ValueError) as caught:
        input_command(word, rest)
    assert str(caught.value).startswith(said)
    assert str(caught.value).endswith(f"(use: {keyboard.USAGE})")
    assert sent_events("move", f"{MAX_COORD - 1} {1 - MAX_COORD}")  # the edges still go


def upload(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`upload PATH` on a desk of its own: what it sent and what it said. Bounded: a blocked
    open is let go (a writer opens the FIFO) so the test fails instead of hanging."""
    sent: list[dict[str, Any]] = []
    said: list[str] = []

    async def main() -> None:
        desk = TerminalDesk(sent.append, said.append, lambda _: None)
        try:
            await asyncio.wait_for(desk.command("upload", path), 2)
        finally:
            with contextlib.suppress(OSError):  # no reader waiting: nothing to let go
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            await desk.close()

    asyncio.run(main())
    return sent, said


def test_an_upload_of_anything_but_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert upload(str(fifo)) == ([], [f"upload {fifo}: a FIFO, not a regular file; nothing sent"])
    sent, said = upload(str(tmp_path))
    assert said == [f"upload {tmp_path}: a directory, not a regular file; nothing sent"]
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "sock"))
        assert upload(str(tmp_path / "sock"))[1] == [
            f"upload {tmp_path / 'sock'}: a socket, not a regular file; nothing sent"
        ]
    assert upload("/dev/null")[1] == [
        "upload /dev/null: a device, not a regular file; nothing sent"
    ]
    assert upload(str(tmp_path / "none"))[1] == [
        f"upload {tmp_path / 'none'}: No such file or directory"
    ]
    (tmp_path / "a.txt").write_bytes(b"hello")
    sent, said = upload(str(tmp_path / "a.txt"))
    assert said == [] and [(m["type"], m["name"], m["size"]) for m in sent] == [
        ("file_begin", "a.txt", 5)
    ]


@pytest.mark.parametrize("rest", ["", "   "])
def test_an_upload_with_no_path_says_the_commands_form(rest: str) -> None:
    said: list[str] = []
    desk = TerminalDesk(lambda _: None, said.append, lambda _: None)
    asyncio.run(desk.command("upload", rest))
    assert said == ["upload: no file named (use: upload PATH)"]
