"""Every table module, imported so ``Base.metadata`` is complete; and migrations by code.

It sits above the features (beside runtime.py), not in platform/: the registry has to know
every feature's tables, and the platform knows none (docs/layers.md)."""

from __future__ import annotations

from alembic import command

import citywallet.campaign.models
import citywallet.control.models
import citywallet.identity.audit
import citywallet.identity.consent
import citywallet.identity.models
import citywallet.identity.totp
import citywallet.inbox.models
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
from citywallet.platform.migrations import MIGRATIONS_DIR as MIGRATIONS_DIR
from citywallet.platform.migrations import alembic_config as alembic_config

metadata = Base.metadata
# The modules whose tables complete ``metadata`` (imported for that alone).
TABLE_MODULES = (
    citywallet.campaign.models,
    citywallet.control.models,
    citywallet.identity.audit,
    citywallet.identity.consent,
    citywallet.identity.consent,
    citywallet.identity.models,
    citywallet.identity.totp,
    citywallet.inbox.models,
    citywallet.interop.provider.models,
    citywallet.interop.switch.models,
    citywallet.ledger.models,
    citywallet.merchant.models,
    citywallet.platform.models,
    citywallet.platform.ratelimit,
    citywallet.redpacket.models,
    citywallet.wallet.models,
)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
