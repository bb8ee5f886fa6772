"""Every table module, imported so ``Base.metadata`` is complete; and migrations by code.

It sits above the features (beside runtime.py), not in platform/: the registry has to know
every feature's tables, and the platform knows none (docs/layers.md)."""

from __future__ import annotations

from alembic import command

from citywallet.platform.db import Base
from citywallet.platform.files import private_sqlite_file
from citywallet.platform.migrations import MIGRATIONS_DIR as MIGRATIONS_DIR
from citywallet.platform.migrations import alembic_config as alembic_config

metadata = Base.metadata


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
