"""Every table module, imported so ``Base.metadata`` is complete; and migrations by code.

It sits above the features (beside runtime.py), not in platform/: the registry has to know
every feature's tables, and the platform knows none (docs/layers.md)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import citywallet
import citywallet.campaign.models
import citywallet.identity.audit
import citywallet.identity.consent
import citywallet.identity.models
import citywallet.interop.provider.models
import citywallet.interop.switch.models
import citywallet.ledger.models
import citywallet.merchant.models
import citywallet.platform.models
import citywallet.platform.ratelimit
import citywallet.redpacket.models
import citywallet.wallet.models
from citywallet.platform.db import Base
from citywallet.platform.files import private_sqlite_file

metadata = Base.metadata
MIGRATIONS_DIR = Path(citywallet.__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` without needing an alembic.ini on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
