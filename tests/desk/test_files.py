"""File names from the other side are made safe, and files are only ever created inside
their folder, never over anything that exists, and removed when a transfer fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openfrp.desk.files import Incoming, TransferError, decode_chunk, safe_name


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/evil", "evil"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("a\x00b.txt", "ab.txt"),
        ("dir\\..\\x.txt", "x.txt"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("name. . ", "name"),
        ("tab\there\nnewline", "tabherenewline"),
        ("\u202eexe.txt", "exe.txt"),  # no right-to-left override tricks
        ("/", "file"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("日本語 ファイル.txt", "日本語 ファイル.txt"),
    ],
)
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_a_very_long_name_is_cut_on_a_character_keeping_its_extension() -> None:
    name = safe_name("é" * 300 + ".txt")
    assert name.endswith(".txt") and len(name.encode()) <= 200
    assert set(name[:-4]) == {"é"}


def test_files_are_created_inside_under_a_free_name(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("kept")
    first = Incoming(tmp_path, "../a.txt", 3, None)
    first.write(0, b"one")
    first.finish()
    second = Incoming(tmp_path, "a.txt", 0, None)
    second.finish()
    assert (first.name, second.name) == ("a (1).txt", "a (2).txt")
    assert (tmp_path / "a.txt").read_text() == "kept"
    assert (tmp_path / "a (1).txt").read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a (1).txt", "a (2).txt", "a.txt"]


def test_a_symlink_in_the_folder_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "outside"
    target.write_text("secret")
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "x.txt").symlink_to(target)
    incoming = Incoming(folder, "x.txt", 4, None)
    incoming.write(0, b"evil")
    incoming.finish()
    assert incoming.name == "x (1).txt"
    assert target.read_text() == "secret"
    # A folder that is itself a symlink is refused outright.
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(OSError):
        Incoming(tmp_path / "link", "y.txt", 1, None)


def test_a_transfer_that_goes_wrong_leaves_nothing(tmp_path: Path) -> None:
    incoming = Incoming(tmp_path, "part.bin", 10, None)
    incoming.write(0, b"12345")
    with pytest.raises(TransferError, match="at 7 where 5 was expected"):
        incoming.write(7, b"x")
    with pytest.raises(TransferError, match="more data than the announced size"):
        incoming.write(5, b"too much data")
    with pytest.raises(TransferError, match="ended at 5 bytes of 10 bytes"):
        incoming.finish()
    incoming.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(TransferError, match="not base64"):
        decode_chunk("not base64!")
