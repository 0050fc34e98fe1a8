"""Inputs and outputs that must never end in a traceback: each has its message and exit code."""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
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


def _on_full_disk(limit: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """`openfrp analyze` on a disk that is full after `limit` bytes of any file, with no root
    and no mount: a write past RLIMIT_FSIZE fails with EFBIG (Python ignores SIGXFSZ)."""
    return subprocess.run(
        [OPENFRP, "analyze", *argv, "--quiet", "--json"],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_report_the_disk_cannot_hold_is_named_and_never_left_half_written(
    tmp_path: Path,
) -> None:
    log = str(write_log(tmp_path / "a.jsonl", _session("c")))
    report = tmp_path / "r.html"
    report.write_text("the last report\n")
    done = _on_full_disk(4096, log, "--html", str(report))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"openfrp analyze: cannot write {report}: File too large\n"
    assert report.read_text() == "the last report\n"  # the earlier report stays whole
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.jsonl", "r.html"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_report_onto_a_device_is_written_to_it_and_named_when_it_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(write_log(tmp_path / "a.jsonl", _session("c")))
    full = tmp_path / "r.html"
    full.symlink_to("/dev/full")
    code, out, err = _run(capsys, "analyze", log, "--quiet", "--html", str(full))
    assert (code, out) == (2, "") and full.is_symlink()
    assert err == f"openfrp analyze: cannot write {full}: No space left on device\n"


def test_an_export_that_cannot_be_written_ends_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(write_log(tmp_path / "a.jsonl", _session("c")))
    taken = tmp_path / "taken"
    (taken / "sessions.csv").mkdir(parents=True)
    code, out, err = _run(capsys, "analyze", log, "--quiet", "--export", str(taken))
    assert (code, out) == (2, "")
    assert err == (
        f"openfrp analyze: --export {taken}: {taken}/sessions.csv is a directory; "
        "remove it or export elsewhere\n"
    )
    done = _on_full_disk(1000, log, "--export", str(tmp_path / "out"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"openfrp analyze: cannot write {tmp_path}/out/sessions.parquet: File too large\n"
    )


@pytest.mark.parametrize("limit", [20_000, 1_000_000], ids=["on-attach", "on-commit"])
def test_a_state_the_disk_cannot_hold_ends_in_one_line_and_stays_usable(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: int
) -> None:
    state = tmp_path / "state"
    done = _on_full_disk(limit, str(fleet), "--state", str(state))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"openfrp analyze: --state {state}: cannot be ")
    assert "File too large" in done.stderr and len(done.stderr.splitlines()) == 1
    answers = []
    for extra in (["--state", str(state)], []):
        assert cli.main(["analyze", str(fleet), "--quiet", "--json", *extra]) == 0
        answers.append(
            {k: v for k, v in json.loads(capsys.readouterr().out).items() if k != "seconds"}
        )
    assert answers[0] == answers[1]


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


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["text", "json"])
def test_a_reader_gone_before_the_report_gives_141_not_a_threshold_exit(
    fleet: Path, extra: list[str]
) -> None:
    """rich's own handling of a closed pipe exits 1, which --fail-if reserves for a threshold
    crossed. The reader is gone before anything is written, so every write fails."""
    proc = subprocess.Popen(
        [OPENFRP, "analyze", str(fleet), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (141, "")


def test_ctrl_c_during_a_run_ends_in_one_line(tmp_path: Path) -> None:
    """A real SIGINT while DuckDB reads a large log: 'interrupted', status 130, no traceback."""
    big = _many_sessions(tmp_path, 150_000)  # about 100 MB
    _interrupted(
        "threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(cli.main(['analyze', {str(big)!r}, '--quiet']))\n"
    )


def _many_sessions(folder: Path, count: int) -> Path:
    """A log of `count` sessions of four events each, the same session under other ids."""
    block = "".join(json.dumps(e) + "\n" for e in _session("S"))
    big = folder / "big.jsonl"
    big.write_text("".join(block.replace('"S"', f'"s{i}"') for i in range(count)))
    return big


def _interrupted(code: str) -> None:
    """Run `code` (with os, signal, sys, threading and cli imported), which sends itself a
    SIGINT: 'interrupted', status 130, no traceback."""
    imports = "import os, signal, sys, threading\nfrom openfrp import cli\n"
    done = subprocess.run(
        [sys.executable, "-c", imports + code], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (130, "")
    assert done.stderr == "openfrp analyze: interrupted\n"


def test_ctrl_c_while_the_state_is_written_leaves_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT while --state writes what a full run read (DuckDB aborts the transaction):
    'interrupted', status 130, and the state rolled back, so the next run gives a plain run's
    answer."""
    big = _many_sessions(tmp_path, 100_000)
    state = str(tmp_path / "state")
    _interrupted(
        "from openfrp.analysis import state\n"
        "save_all = state.State.save_all\n"
        "def interrupted(*args):\n"
        "    threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "    return save_all(*args)\n"
        "state.State.save_all = interrupted\n"
        f"sys.exit(cli.main(['analyze', {str(big)!r}, '--quiet', '--state', {state!r}]))\n"
    )
    answers = []
    for extra in (["--state", state], []):
        assert cli.main(["analyze", str(big), "--quiet", "--json", *extra]) == 0
        answer = json.loads(capsys.readouterr().out)
        answers.append({k: v for k, v in answer.items() if k != "seconds"})
    assert answers[0] == answers[1]
