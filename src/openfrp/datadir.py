"""Where openfrp keeps its state when no data folder is named: the platform's usual place.

A folder relative to the working directory scattered state wherever a command happened to
start and could not be found again by the next one; these places can.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

SYSTEM_DATA_DIR = Path("/var/lib/openfrp")
ENV_DATA_DIR = "OPENFRP_DATA_DIR"
WRITABLE = "give a folder this user can write (--data-dir)"


class DataDirError(OSError):
    """A folder the server cannot use, in one line: which, what failed and the next step (an
    OSError, so whatever handles the raw one shows this line instead)."""


@contextlib.contextmanager
def using(
    folder: Path, doing: str, label: str = "data folder", fix: str = WRITABLE
) -> Iterator[None]:
    """Turn an OSError inside into a DataDirError: `label folder: cannot doing (why): fix`."""
    try:
        yield
    except DataDirError:
        raise
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise DataDirError(f"{label} {folder}: cannot {doing} ({why}): {fix}") from None


def _home(environ: Mapping[str, str], uid: int) -> Path:
    """$HOME, else the account's home from the password database (a service may lack HOME)."""
    home = environ.get("HOME", "")
    if home:
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(uid).pw_dir)
    except (ImportError, KeyError):
        return Path.home()


def default_data_dir(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """The data folder by the platform's conventions (XDG base directories, systemd, FHS):
    a systemd unit's StateDirectory ($STATE_DIRECTORY), else /var/lib/openfrp for root (a
    system service), else $XDG_DATA_HOME/openfrp, else ~/.local/share/openfrp.

    `environ` and `uid` default to this process's; tests pass their own so that no real
    home or /var/lib is looked at. Relative values are ignored, as the XDG spec asks."""
    env = os.environ if environ is None else environ
    if uid is None:
        uid = os.geteuid() if hasattr(os, "geteuid") else -1
    state = env.get("STATE_DIRECTORY", "").split(":")[0]  # systemd lists one per entry
    if os.path.isabs(state):
        return Path(state)
    if uid == 0:
        return SYSTEM_DATA_DIR
    xdg = env.get("XDG_DATA_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "openfrp"
    return (_home(env, uid) / ".local" / "share" / "openfrp").absolute()


def resolve_data_dir(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The data folder a command uses: `explicit` (an option or setting), else
    $OPENFRP_DATA_DIR, else the platform default; always absolute, `~` expanded."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get(ENV_DATA_DIR, "")
    if not chosen:
        return default_data_dir(env)
    return Path(chosen).expanduser().resolve()
