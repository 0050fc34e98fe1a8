"""Inputs and outputs that must never end in a traceback: each has its message and exit code."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from openfrp import cli
from openfrp.analysis import sessions
from tests.analysis.conftest import ev, write_log
from tests.e2e.harness import OPENFRP


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _session(s: str) -> list[dict[str, object]]:
    return [
        ev(s, 0, "server", "session.created"),
        ev(s, 1, "server", "connection.established", client="cli"),
        ev(s, 2, "server", "session.started"),
        ev(s, 30, "server", "session.ended", 4000),
    ]


def test_unreadable_files_are_named_and_the_rest_analyzed(tmp_path: Path) -> None:
    good = write_log(tmp_path / "good.jsonl", _session("g"))
    packed = gzip.compress(good.read_bytes() * 50)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    huge = dict(ev("h", 5, "server", "clipboard.transfer"), attrs={"text": "x" * (17 << 20)})
    big = write_log(tmp_path / "big.jsonl", [*_session("h")[:2], huge])
    analysis = sessions.analyze([str(good), str(cut), str(broken), str(big)])
    assert analysis.events == 4 + 3 and [f.path for f in analysis.files] == [str(good), str(big)]
    assert set(analysis.bad_files) == {str(cut), str(broken)}
    assert "gzip" in analysis.bad_files[str(cut)].lower()


def test_names_with_glob_characters_directories_and_fifos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = write_log(tmp_path / "logs[1].jsonl", _session("b"))
    code, out, _ = _run(capsys, "analyze", str(odd), "--quiet", "--json")
    assert code == 0 and '"sessions": 1' in out
    code, out, err = _run(capsys, "analyze", str(tmp_path), "--quiet")
    assert (code, out) == (2, "") and "is a directory (name its files," in err
    assert f"e.g. '{tmp_path}/*')" in err
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    code, out, err = _run(capsys, "analyze", str(fifo), "--quiet")
    assert (code, out) == (2, "") and "not a regular file" in err


def test_report_destinations_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(write_log(tmp_path / "a.jsonl", _session("c")))
    code, out, err = _run(capsys, "analyze", log, "--quiet", "--html", str(tmp_path))
    assert (code, out) == (2, "") and len(err.splitlines()) == 1 and "is a directory" in err
    code, out, err = _run(capsys, "analyze", log, "--quiet", "--export", log)
    assert (code, out) == (2, "") and len(err.splitlines()) == 1 and "is a file" in err


def test_the_html_report_is_whole_when_the_reader_stops_early(fleet: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    done = subprocess.run(
        f"'{OPENFRP}' analyze '{fleet}' --quiet --html '{report}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr
    page = report.read_text(encoding="utf-8")
    assert page.rstrip().endswith("</html>")
    # For whom: failed sessions are listed, each linked to a timeline on the page.
    links = re.findall(r'<a href="#(s-[^"]+)">', page)
    assert len(links) >= 10 and all(f'id="{anchor}"' in page for anchor in links)
    assert 'id="table-who-user"' in page and "sessions where the code is a cause" in page


def test_ctrl_c_during_a_run_ends_in_one_line(tmp_path: Path) -> None:
    """A real SIGINT while DuckDB reads a large log: 'interrupted', status 130, no traceback."""
    # Four events, the same session under many ids: about 100 MB.
    block = "".join(json.dumps(e) + "\n" for e in _session("S"))
    big = tmp_path / "big.jsonl"
    big.write_text("".join(block.replace('"S"', f'"s{i}"') for i in range(150_000)))
    code = (
        "import os, signal, sys, threading\n"
        "from openfrp import cli\n"
        "threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(cli.main(['analyze', {str(big)!r}, '--quiet']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (130, "")
    assert done.stderr == "openfrp analyze: interrupted\n"
