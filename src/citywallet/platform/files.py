"""Private files: ``var/`` is created 0700; the database and key files 0600.

They hold keys, password and PIN hashes and encrypted personal data: no other local user
has any business reading them (a backup tool runs as the service's user, or as root).
Modes are set explicitly at creation, whatever the process's umask; an existing file is
tightened, an existing directory only reported (it may be a shared path someone chose).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from citywallet.platform.logging import get_logger

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
log = get_logger("citywallet.files")


def private_dir(path: Path) -> Path:
    """Create directory ``path`` (and its parents) as 0700; an existing one is left as it is
    (with a warning if others may read it)."""
    if path.is_dir():
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("directory readable by other users", path=str(path))
        return path
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure file ``path`` exists as 0600 (created empty, or an existing one tightened)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            try:
                os.chmod(path, PRIVATE_FILE)
            except OSError as exc:  # not ours to change: say so, do not refuse to start
                log.warning("file readable by other users", path=str(path), error=str(exc))
        return path
    os.fchmod(fd, PRIVATE_FILE)
    os.close(fd)
    return path


def private_sqlite_file(url: str) -> None:
    """Create the file of a SQLite URL as 0600 before SQLite does (its WAL and shared-memory
    files then get the same mode); in-memory databases and other engines are left alone."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:"):
        return  # a SQLite URI: its own mode= and flags decide
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)
