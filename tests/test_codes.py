"""The code table against the reference table it is copied from, row by row."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from openfrp import codes

ROOT = Path(__file__).resolve().parents[1]
# The reference table travels with the repository; the copy is checked against the original
# where the original lies beside the clone.
REFERENCE = ROOT / "docs/reference/frame-error-codes.txt"
ORIGINAL = ROOT.parent / "shared/reference/frame-error-codes.txt"
# A row runs together: number, type, description, component, FRP version, with no separators.
ROW = re.compile(r"^(\d{4})(Info|Error)(.+)(Server|Terminal|Variable)(FRP 7/8|FRP 8)$")


def reference_rows() -> dict[int, tuple[str, str, str, str]]:
    rows: dict[int, tuple[str, str, str, str]] = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if not re.match(r"^\d{4}", line):
            continue
        match = ROW.match(line)
        assert match, f"reference row not understood: {line!r}"
        number, kind, description, component, frp = match.groups()
        assert int(number) not in rows, f"reference lists {number} twice"
        rows[int(number)] = (kind, description, component, frp)
    return rows


REFERENCE_ROWS = reference_rows()


@pytest.mark.skipif(not ORIGINAL.exists(), reason="no original reference table beside the clone")
def test_the_copy_of_the_reference_table_is_the_original() -> None:
    assert REFERENCE.read_bytes() == ORIGINAL.read_bytes()


def test_reference_has_33_rows_and_table_has_exactly_those() -> None:
    assert len(REFERENCE_ROWS) == 33
    assert [c.number for c in codes.TABLE] == sorted(REFERENCE_ROWS)
    assert len(codes.BY_NUMBER) == len(codes.TABLE)


@pytest.mark.parametrize("number", sorted(REFERENCE_ROWS))
def test_row_matches_reference(number: int) -> None:
    kind, description, component, frp = REFERENCE_ROWS[number]
    row = codes.get(number)
    assert row.kind.value == kind
    assert row.description == description
    assert row.component.value == component
    assert row.frp == frp
    assert row.frp_versions == ((7, 8) if frp == "FRP 7/8" else (8,))


def test_short_names_unique_upper_snake() -> None:
    names = [c.name for c in codes.TABLE]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", name), name
    assert codes.BY_NAME["CONNECTION_SEVERED"].number == 4102


@pytest.mark.parametrize("code", codes.TABLE, ids=lambda c: str(c.number))
def test_every_row_has_message_and_action(code: codes.Code) -> None:
    assert code.message.strip()
    assert code.action.strip()
    assert isinstance(code.fault, codes.Fault)
    assert isinstance(code.reconnect, bool)


@pytest.mark.parametrize("code", codes.TABLE, ids=lambda c: str(c.number))
def test_component_agrees_with_range(code: codes.Code) -> None:
    assert codes.code_range(code.number) == code.component.value.lower()


def test_to_dict_is_plain_data() -> None:
    data = codes.get(4008).to_dict()
    assert data["kind"] == "Info"
    assert data["component"] == "Server"
    assert data["fault"] == "policy"
    assert data["frp_versions"] == [7, 8]
    assert data["reconnect"] is False


def test_describe_known_code() -> None:
    assert codes.describe(4102) == (
        "4102 CONNECTION_SEVERED: Your connection to the session was lost. Reconnecting..."
    )
    assert codes.code_range(4102) == "terminal"
    assert codes.lookup(4102) is codes.get(4102)


@pytest.mark.parametrize(
    ("number", "where", "says"),
    [
        (4007, "server", "unknown; server range"),
        (4999, "WebSocket private (unassigned in openfrp)", "unknown; WebSocket private"),
        (99999, "outside every known range", "unknown; outside every known range)"),
        (
            1006,
            "WebSocket standard",
            "unknown; WebSocket standard range): WebSocket standard close code 'Abnormal Closure'",
        ),
    ],
)
def test_describe_unknown_codes(number: int, where: str, says: str) -> None:
    assert codes.lookup(number) is None
    assert codes.code_range(number) == where
    text = codes.describe(number)
    assert text.startswith(f"{number} is not an openfrp code")
    assert says in text
    assert "unknown" in text
    assert "range range" not in text
    with pytest.raises(KeyError):
        codes.get(number)


def test_docs_codes_md_is_generated_from_the_table() -> None:
    """docs/codes.md is the table's own rendering; regenerate it with `openfrp codes --markdown`."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "codes.md"
    assert docs.read_text(encoding="utf-8") == codes.markdown()


def test_code_numbers_are_the_table_as_an_int_enum() -> None:
    """CodeNumber is made from TABLE: one member per row, in order, equal to the wire int."""
    assert [(m.name, m.value) for m in codes.CodeNumber] == [
        (c.name, c.number) for c in codes.TABLE
    ]
    member = codes.CodeNumber.IDLE_TIMEOUT
    assert member == 4009 and isinstance(member, int)
    assert hash(member) == hash(4009) and {4009: "x"}[member] == "x"
    assert str(member) == f"{member}" == "4009"
    assert json.dumps({"code": member}) == '{"code": 4009}'
    assert codes.CodeNumber(4009) is member


def test_the_type_checkers_code_names_are_the_tables() -> None:
    """The names codes.py lists for the type checker (which cannot see a generated enum) are
    TABLE's names in order: a row added to the table needs its name there too."""
    tree = ast.parse((ROOT / "src/openfrp/codes.py").read_text(encoding="utf-8"))
    classes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "CodeNumber"
    ]
    assert len(classes) == 1
    names = [
        target.id
        for stmt in classes[0].body
        if isinstance(stmt, ast.Assign)
        for target in stmt.targets
        if isinstance(target, ast.Name)
    ]
    assert names == [c.name for c in codes.TABLE]
