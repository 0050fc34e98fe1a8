"""Keyboard and mouse into the session's X display through XTEST (python-xlib).

The terminal sends keysyms, not keycodes: the person's layout (AltGr, dead keys, a French or
Russian keyboard) has already produced the character, and the server only has to make the X
client see that keysym. A keysym the server keymap lacks is bound to a spare keycode on demand
and the least recently used binding is recycled, as TigerVNC does. Every method makes blocking
X calls: run them in a worker thread, never on the event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from Xlib import X

from openfrp.desk.xconnect import open_display
from openfrp.protocol.input import (
    InputEvent,
    KeyInput,
    PointerInput,
    ReleaseInput,
    WheelInput,
)

BUTTONS = ((1, 1), (2, 2), (4, 3))  # mask bit -> X button: left, middle, right
CAPS_LOCK = 0xFFE5
REBIND_GRACE = 0.2  # seconds a recycled spare keycode rests after its last press
WINDOW_POLL = 0.05  # seconds between looks for the app's first window
_SHIFT, _MOD5 = X.ShiftMapIndex, X.Mod5MapIndex  # Mod5 holds ISO_Level3_Shift (AltGr)


def _is_character(keysym: int) -> bool:
    """Keysyms that stand for a character, whose level Shift chooses (not Tab, F1, Left)."""
    return keysym < 0xFE00 or keysym >= 0x1000000


def _shift_keeps(row: list[int]) -> bool:
    """Whether Shift leaves the key's keysym as it is (Space: [space, NoSymbol]). Then a Shift
    the person holds stays held: the app's Shift+Space or Ctrl+Shift+Space must see it."""
    plain, shifted = row[0], row[1] if len(row) > 1 else 0
    if shifted or not _is_character(plain):
        return shifted == plain
    # (K, NoSymbol): X shifts K to its capital, if it has one (core protocol rule).
    char = chr(plain & 0xFFFFFF) if plain <= 0xFF or plain >= 0x1000000 else ""
    return char != "" and char.lower() == char.upper()


class InjectionError(RuntimeError):
    """The display cannot take input (no XTEST)."""


class Injector:
    """One X connection that types, points and clicks on one display."""

    def __init__(self, display_name: str, cookie: str = "", window_by: float = 0.0) -> None:
        """`window_by`: until this monotonic time, keys before any pointer move wait for the
        app's first window (type-ahead while the session starts)."""
        self._d = open_display(display_name, cookie)
        self._window_by = window_by
        if not self._d.has_extension("XTEST"):
            self._d.close()
            raise InjectionError(f"display {display_name} has no XTEST extension")
        self._root = self._d.screen().root
        # The terminal repeats a held key itself (the person's own repeat rate); the X
        # server's repeat would add presses of its own to every key held over a slow link.
        self._d.change_keyboard_control(auto_repeat_mode=X.AutoRepeatModeOff)
        self.width = self._d.screen().width_in_pixels
        self.height = self._d.screen().height_in_pixels
        info = self._d.display.info
        self._first, self._count = info.min_keycode, info.max_keycode - info.min_keycode + 1
        self._bound: OrderedDict[int, int] = OrderedDict()  # keysym -> spare keycode, LRU first
        self._load_keymap()
        self._held: dict[int, int] = {}  # keysym -> keycode pressed for it
        self._pointed = False  # the terminal has placed the pointer
        self._pressed_at: dict[int, float] = {}  # keycode -> monotonic time of its last press
        self._buttons = 0
        # The person's Caps Lock reaches the display too, but the terminal sends each letter
        # as the person's side already cased it: while the display's lock is on, a character
        # is typed with the lock let go around it, or Lock would invert its case again.
        self._locked = bool(self._root.query_pointer().mask & X.LockMask)

    def _load_keymap(self) -> None:
        """Read the keymap and all that is taken from it, at start and whenever it changes
        (setxkbmap, a layout switcher, a binding of ours): a binding the new map overwrote is
        gone, and its keycode is spare again or the layout's own."""
        rows = self._d.get_keyboard_mapping(self._first, self._count)
        self._map = {self._first + i: list(row) for i, row in enumerate(rows)}
        self._bound = OrderedDict(
            (ks, kc) for ks, kc in self._bound.items() if set(self._map[kc]) - {0} == {ks}
        )
        kept = set(self._bound.values())
        self._spare = [
            kc for kc in sorted(self._map, reverse=True) if kc in kept or not any(self._map[kc])
        ]
        self._where = self._levels()
        mods = self._d.get_modifier_mapping()
        self._shift = [kc for kc in mods[_SHIFT] if kc]
        self._level3 = {kc for kc in mods[_MOD5] if kc}
        self._shift_key = self._shift[0] if self._shift else None
        bits = self._d.get_keyboard_control().auto_repeats  # X's own: off for modifiers
        self._repeats = {kc for kc in self._map if bits[kc // 8] >> (kc % 8) & 1}

    def _levels(self) -> dict[int, tuple[int, int]]:
        """keysym -> (keycode, level 0 or 1): the plain level wins, then the lowest keycode."""
        where: dict[int, tuple[int, int]] = {}
        for level in (1, 0):
            for keycode in sorted(self._map, reverse=True):
                syms = self._map[keycode]
                if len(syms) > level and syms[level]:
                    where[syms[level]] = (keycode, level)
        return where

    def _read_mapping_changes(self) -> None:
        """Take the events that arrived; a new keyboard or modifier map is read again."""
        changed = False
        for _ in range(self._d.pending_events()):
            event = self._d.next_event()
            changed |= event.type == X.MappingNotify and event.request != X.MappingPointer
        if changed:
            self._load_keymap()

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: InputEvent) -> None:
        if isinstance(event, KeyInput):
            self.key(event.keysym, event.down)
        elif isinstance(event, PointerInput):
            self.pointer(event.x, event.y, event.buttons)
        elif isinstance(event, WheelInput):
            self.wheel(event.dx, event.dy)
        elif isinstance(event, ReleaseInput):
            self.release_all()

    def key(self, keysym: int, down: bool) -> None:
        keycode = self._held.get(keysym)
        if not down:
            if keycode is not None:
                self._fake(X.KeyRelease, self._held.pop(keysym))
            return
        if keycode is not None and keycode not in self._repeats:
            return  # a modifier or a lock, which X never repeats
        lock = self._lock_key() if _is_character(keysym) else None
        if lock is not None:  # the lock let go around the character: it keeps its case
            self._fake(X.KeyPress, lock)
            self._fake(X.KeyRelease, lock)
        if keycode is not None:
            # A repeat. X drops a press of a key already down: let go first, as X's own does.
            self._fake(X.KeyRelease, self._held.pop(keysym))
        keycode = self._press_new(keysym)
        if lock is not None:
            self._fake(X.KeyPress, lock)
            self._fake(X.KeyRelease, lock)
        if keycode is None:
            return
        if keysym == CAPS_LOCK:
            self._locked = not self._locked
        self._held[keysym] = keycode

    def _press_new(self, keysym: int) -> int | None:
        """Press the key for `keysym` (not held yet): its keycode, None if none is free."""
        found = None if keysym in self._bound else self._where.get(keysym)
        if found is None:
            keycode = self._bind_spare(keysym)
            if keycode is not None:
                self._press(keycode, None)
            return keycode
        keycode, level = found
        if not _is_character(keysym):
            self._press(keycode, None)
        else:
            self._press(keycode, None if _shift_keeps(self._map[keycode]) else level == 1, True)
        return keycode

    def _lock_key(self) -> int | None:
        """The Caps Lock keycode while the display's lock is on (else None)."""
        found = self._where.get(CAPS_LOCK) if self._locked else None
        return found[0] if found is not None else None

    def run(self, events: list[InputEvent]) -> None:
        """Apply a batch in order, then wait for the server to take it (one round trip)."""
        self._read_mapping_changes()  # a layout changed since the last batch types this one
        if any(isinstance(event, PointerInput) for event in events):
            self.refresh_size()  # the screen may have been resized since the last batch
        elif not self._pointed and any(isinstance(event, KeyInput) for event in events):
            self._aim_keys()
        for event in events:
            self.apply(event)
        self.sync()

    def pointer(self, x: int, y: int, buttons: int) -> None:
        """Move to (x, y), clamped to the screen, then press or release what changed."""
        x = min(max(x, 0), self.width - 1)
        y = min(max(y, 0), self.height - 1)
        self._pointed = True
        self._d.xtest_fake_input(X.MotionNotify, 0, root=self._root, x=x, y=y)
        for bit, button in BUTTONS:
            if (buttons ^ self._buttons) & bit:
                self._fake(X.ButtonPress if buttons & bit else X.ButtonRelease, button)
        self._buttons = buttons

    def _aim_keys(self) -> None:
        """Keys before any pointer move: with no window manager the keyboard follows the
        pointer, so over the bare root they would reach nobody; put it on the top window,
        waiting (until `window_by`) for one while the app starts."""
        self._pointed = True
        while not self._root.query_pointer().child:
            window = self._top_window()
            if window is not None:
                box = window.get_geometry()
                x, y = box.x + box.width // 2, box.y + box.height // 2
                self._d.xtest_fake_input(X.MotionNotify, 0, root=self._root, x=x, y=y)
                return
            if time.monotonic() >= self._window_by:
                return
            time.sleep(WINDOW_POLL)

    def _top_window(self) -> Any:
        for window in reversed(self._root.query_tree().children):  # topmost first
            attributes = window.get_attributes()
            if attributes.map_state == X.IsViewable and attributes.win_class == X.InputOutput:
                return window
        return None

    def wheel(self, dx: int, dy: int) -> None:
        for steps, back, forth in ((dy, 4, 5), (dx, 6, 7)):
            button = forth if steps > 0 else back
            for _ in range(abs(steps)):
                self._fake(X.ButtonPress, button)
                self._fake(X.ButtonRelease, button)

    def release_all(self) -> None:
        """Let go of every key and button this connection holds, so nothing sticks."""
        for keycode in set(self._held.values()):
            self._fake(X.KeyRelease, keycode)
        self._held.clear()
        for bit, button in BUTTONS:
            if self._buttons & bit:
                self._fake(X.ButtonRelease, button)
        self._buttons = 0

    def sync(self) -> None:
        """Wait until the server has taken every request; a dead display raises here."""
        self._d.sync()
        self._read_mapping_changes()

    def refresh_size(self) -> None:
        geometry = self._root.get_geometry()
        self.width, self.height = geometry.width, geometry.height

    def close(self) -> None:
        self._d.close()

    @property
    def held(self) -> int:
        return len(self._held) + bin(self._buttons).count("1")

    # -- keys ------------------------------------------------------------------------------

    def _fake(self, kind: int, detail: int) -> None:
        self._d.xtest_fake_input(kind, detail)

    def _press(self, keycode: int, shifted: bool | None, character: bool = False) -> None:
        """Press `keycode` with Shift as `shifted` says, so the plain or shifted level gives
        the character (None: as held, which Shift+Tab, Shift+Space and bound spare keys must
        see), and AltGr let go for a `character` of the keymap."""
        held = set(self._held.values())
        shift_held = [kc for kc in self._shift if kc in held]
        lift = [kc for kc in self._level3 if kc in held] if character else []
        add: list[int] = []
        if shifted is True and not shift_held and self._shift_key is not None:
            add = [self._shift_key]
        elif shifted is False:
            lift += shift_held
        for kc in lift:
            self._fake(X.KeyRelease, kc)
        for kc in add:
            self._fake(X.KeyPress, kc)
        self._fake(X.KeyPress, keycode)
        self._pressed_at[keycode] = time.monotonic()
        for kc in add:
            self._fake(X.KeyRelease, kc)
        for kc in lift:
            self._fake(X.KeyPress, kc)

    def _bind_spare(self, keysym: int) -> int | None:
        """A spare keycode that now gives `keysym` at every level; None when all are held."""
        keycode = self._bound.get(keysym)
        if keycode is not None:
            self._bound.move_to_end(keysym)
            return keycode
        used = set(self._bound.values())
        free = [kc for kc in self._spare if kc not in used]
        if free:
            keycode = free[0]
        else:
            held = set(self._held.values())
            victim = next((ks for ks, kc in self._bound.items() if kc not in held), None)
            if victim is None:
                return None
            keycode = self._bound.pop(victim)
            self._where.pop(victim, None)
            # A client reads the new mapping when it arrives, maybe before it has handled the
            # last press of this keycode: give it time, or that press turns into the new key.
            wait = REBIND_GRACE - (time.monotonic() - self._pressed_at.get(keycode, 0.0))
            if wait > 0:
                self._d.sync()
                time.sleep(wait)
        self._d.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._map[keycode] = [keysym, keysym]
        self._where[keysym] = (keycode, 0)
        self._bound[keysym] = keycode
        return keycode
