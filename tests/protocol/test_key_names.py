"""`key COMBO` of the Python terminal: Ctrl with the + key can be written (`ctrl++`,
`ctrl+plus`), X's key names are taken in any case, a chord with Shift sends what Shift gives
on a US keyboard (as the page does, so the app keeps its Shift), and a wrong name is one
line naming it."""

from __future__ import annotations

import pytest

from openfrp.protocol.keysyms import combo_keys

CTRL, SHIFT = 0xFFE3, 0xFFE1


def pressed(combo: str) -> list[int]:
    keys = combo_keys(combo)
    downs = [k.keysym for k in keys if k.down]
    assert [k.keysym for k in keys if not k.down] == downs[::-1]  # let go in reverse
    return downs


@pytest.mark.parametrize(
    ("combo", "keysyms"),
    [
        ("ctrl++", [CTRL, ord("+")]),
        ("ctrl + +", [CTRL, ord("+")]),
        ("+", [ord("+")]),
        ("ctrl+plus", [CTRL, ord("+")]),
        ("ctrl+minus", [CTRL, ord("-")]),
        ("ctrl+EQUAL", [CTRL, ord("=")]),
        ("pause", [0xFF13]),
        ("Pause", [0xFF13]),
        ("scroll_lock", [0xFF14]),
        ("Num_Lock", [0xFF7F]),
        ("kp_enter", [0xFF8D]),
        ("KP_Add", [0xFFAB]),
        ("BackSpace", [0xFF08]),
        ("Eacute", [0xC9]),  # X's names of two cases are taken in their own case
        ("eacute", [0xE9]),
        ("ctrl+c", [CTRL, ord("c")]),
    ],
)
def test_plus_and_x_key_names(combo: str, keysyms: list[int]) -> None:
    assert pressed(combo) == keysyms


@pytest.mark.parametrize(
    ("combo", "keysyms"),
    [
        ("shift+1", [SHIFT, ord("!")]),
        ("ctrl+shift+=", [CTRL, SHIFT, ord("+")]),
        ("ctrl+shift+equal", [CTRL, SHIFT, ord("+")]),
        ("ctrl+shift+-", [CTRL, SHIFT, ord("_")]),
        ("ctrl+shift+minus", [CTRL, SHIFT, ord("_")]),
        ("shift+/", [SHIFT, ord("?")]),
        ("shift+space", [SHIFT, 0x20]),
        ("shift+Tab", [SHIFT, 0xFF09]),
        ("ctrl+shift+v", [CTRL, SHIFT, ord("V")]),
        ("shift_r+a", [0xFFE2, ord("A")]),
        ("shift+ß", [SHIFT, 0xDF]),  # no capital of one letter: as it is
        ("shift+!", [SHIFT, ord("!")]),
    ],
)
def test_with_shift_a_key_is_what_shift_gives_on_a_us_keyboard(
    combo: str, keysyms: list[int]
) -> None:
    """`shift+1` sent 1, and the server let go of Shift to type it: the app saw a plain 1."""
    assert pressed(combo) == keysyms


@pytest.mark.parametrize(
    ("combo", "said"),
    [
        ("ctrl+nosuchkey", "unknown key 'nosuchkey' (a key name or one character)"),
        ("ctrl+minsu", "unknown key 'minsu'; did you mean minus?"),
        ("pasue", "unknown key 'pasue'; did you mean pause?"),
        ("ctrl+", "no key after 'ctrl+' (the + key itself: ctrl++ or ctrl+plus)"),
        ("ctrl++a", "no key name at '+a' (the + key itself: ctrl++ or ctrl+plus)"),
        ("", "no key given"),
    ],
)
def test_a_wrong_combo_is_one_line_naming_it(combo: str, said: str) -> None:
    with pytest.raises(ValueError) as caught:
        combo_keys(combo)
    assert str(caught.value) == said
    assert "\n" not in said
