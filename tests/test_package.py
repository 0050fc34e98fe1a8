"""The wheel built from the repository works where the repository is not: a fresh venv in a
folder of its own runs `openfrp --version`, serves the browser terminal of a demo session
(static files ship) and analyzes that session's log (rules ship)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src/openfrp/terminal/static"


def _tracked_copy(dest: Path) -> Path:
    """The repository's files as a clone would have them once committed (nothing ignored:
    no venv, caches or build folders)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without the repository or system site-packages, holding the built wheel; the
    dependencies come from this interpreter's site-packages through a path file, so the
    test needs no index, and `pip check` proves they satisfy the wheel's requirements."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    work = tmp_path_factory.mktemp("package")
    source = _tracked_copy(work / "source")
    wheels = work / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "Could not find a version" in build.stderr:
        pytest.skip("the build backend cannot be fetched (no package index reachable)")
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("openfrp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"openfrp/terminal/static/{p.name}" for p in STATIC.iterdir()} <= names
    assert "openfrp/analysis/rules.toml" in names
    if shutil.which("cc") or shutil.which("gcc"):  # the analyzer's native fold is built in
        assert any(n.startswith("openfrp/analysis/_fold.") for n in names), sorted(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin/python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [python, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert "openfrp" not in check.stdout, check.stdout
    return venv


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_installed_wheel_runs_outside_the_repository(installed: Path, tmp_path: Path) -> None:
    openfrp = str(installed / "bin/openfrp")
    where = subprocess.run(
        [installed / "bin/python", "-c", "import openfrp; print(openfrp.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        check=True,
    ).stdout
    assert where.startswith(str(installed)), where
    version = subprocess.run(
        [openfrp, "--version"], capture_output=True, text=True, cwd=tmp_path, env=_env()
    )
    assert version.returncode == 0 and version.stdout.strip() == "openfrp 0.1.0", version

    (tmp_path / "server.toml").write_text(
        '[server]\nport = 0\ndisplay = "synthetic"\ndata_dir = "data"\n\n[launchpads.desktop]\n'
    )
    demo = subprocess.Popen(
        [openfrp, "demo", "--config", "server.toml", "--ready-file", "ready"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    )
    try:
        assert demo.stdout is not None
        link = ""
        deadline = time.monotonic() + 60
        while not link and time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, demo.stderr.read() if demo.stderr else "demo ended"
            link = line.strip() if "/s/" in line and "connect" not in line else ""
        base = link.split("/s/")[0]
        with urllib.request.urlopen(link, timeout=10) as page:
            html = page.read().decode()
        assert "<script" in html and "terminal/terminal.js" in html
        for script in ("terminal.js", "connection.js", "video.js"):
            with urllib.request.urlopen(f"{base}/terminal/{script}", timeout=10) as answer:
                assert answer.read() == (STATIC / script).read_bytes()
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(30)
    assert demo.returncode == 0, demo.stderr.read() if demo.stderr else ""
    log = tmp_path / "data/logs/server-events.jsonl"
    report = subprocess.run(
        [openfrp, "analyze", str(log), "--json", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["kpis"]["sessions"] == 1 and summary["kpis"]["ended"] == 1, summary["kpis"]
    assert [c["code"] for c in summary["top_codes"]] == [4019]
    expected = next(c for c in summary["categories"] if c["category"] == "expected_end")
    assert expected["sessions"] == 1
