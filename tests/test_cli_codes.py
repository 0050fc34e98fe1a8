"""`openfrp codes` and `openfrp explain`, run as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openfrp import codes

OPENFRP = shutil.which("openfrp", path=str(Path(sys.executable).parent)) or shutil.which("openfrp")


def openfrp(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENFRP, "the openfrp console script is not installed beside this Python"
    return subprocess.run(
        [OPENFRP, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def codes_json(*args: str) -> list[dict[str, Any]]:
    result = openfrp("codes", "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_codes_table_lists_every_code() -> None:
    result = openfrp("codes")
    assert result.returncode == 0, result.stderr
    for code in codes.TABLE:
        assert str(code.number) in result.stdout
        assert code.name in result.stdout


def test_codes_json_is_the_whole_table() -> None:
    rows = codes_json()
    assert [row["number"] for row in rows] == [c.number for c in codes.TABLE]
    assert rows[0] == codes.TABLE[0].to_dict()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--component", "terminal"), [4101, 4102, 4103, 4106, 4107, 4108]),
        (("--component", "variable"), [5006, 5007, 5008, 5009, 5010, 5019]),
        (("--type", "info"), [4000, 4006, 4008, 4009, 4015, 4018, 4019, 4103]),
        (("--frp", "8"), [c.number for c in codes.TABLE]),
        (("--frp", "7"), [c.number for c in codes.TABLE if c.frp == "FRP 7/8"]),
        (
            ("--component", "server", "--frp", "7", "--type", "error"),
            [4001, 4002, 4003, 4004, 4005, 4011, 4022, 4023, 4024, 4025, 4027, 4028, 4029],
        ),
        (("--component", "variable", "--frp", "7"), []),
    ],
)
def test_codes_filters(args: tuple[str, ...], expected: list[int]) -> None:
    assert [row["number"] for row in codes_json(*args)] == expected


def test_codes_rejects_unknown_filter_value() -> None:
    result = openfrp("codes", "--component", "browser")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_explain_known_code() -> None:
    result = openfrp("explain", "4102")
    assert result.returncode == 0, result.stderr
    row = codes.get(4102)
    lines = result.stdout.splitlines()
    assert lines[0] == "4102 CONNECTION_SEVERED (Error, Terminal, FRP 7/8)"
    assert f"  description: {row.description}" in lines
    assert f"  message:     {row.message}" in lines
    assert f"  action:      {row.action}" in lines
    assert "  reconnect:   yes" in lines


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("4007", "unknown; server range"),
        ("4999", "unknown; WebSocket private (unassigned in openfrp) range"),
        ("99999", "unknown; outside every known range"),
        ("1006", "WebSocket standard close code 'Abnormal Closure'"),
    ],
)
def test_explain_unknown_code(number: str, says: str) -> None:
    result = openfrp("explain", number)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == codes.describe(int(number))
    assert f"{number} is not an openfrp code" in result.stdout
    assert says in result.stdout


@pytest.mark.parametrize("text", ["abc", "41o2", ""])
def test_explain_not_a_number(text: str) -> None:
    result = openfrp("explain", text)
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "is not a code number" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_reader_that_goes_away_is_no_traceback() -> None:
    """`openfrp codes --json | head -0`: the pipe is closed before anything is written."""
    proc = subprocess.Popen(
        [OPENFRP, "codes", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141)
    assert "Traceback" not in err, err
