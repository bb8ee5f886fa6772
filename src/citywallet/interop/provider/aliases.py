"""MSISDN aliases at the switch: a resident is findable by mobile number once their real
name is verified, and no longer once their wallet closes.

The registration is a message through the outbox (``POST /participants/MSISDN/{phone}`` with
the masked name; ``DELETE`` to remove it). Identity cannot call interop (interop depends on
identity), so the adapters call :func:`register_alias` after a verification commits and
:func:`remove_alias` inside the transaction that closes a wallet; a registration lost
between two transactions is repaired by ``citywallet interop aliases sync``, which sends
every verified resident's again (the switch treats a repeat by the same provider as an
update).
"""

from __future__ import annotations

from collections.abc import Callable

from citywallet.identity.service import get_user, list_users, user_phone
from citywallet.interop.messages import AliasRegistration
from citywallet.interop.provider.common import configured, msisdn, send
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.logging import get_logger

log = get_logger(__name__)

SYNC_PAGE = 200


def register_alias(
    uow: UnitOfWork, *, user_id: str, settings: Settings, encryptor: Encryptor
) -> bool:
    """Queue the resident's alias registration (active and verified only); returns whether
    a message was queued."""
    if not configured(settings):
        return False
    user = get_user(uow, user_id=user_id)
    if user.status != "active" or not user.real_name_verified or not user.name_masked:
        return False
    phone = msisdn(user_phone(uow, user_id=user_id, encryptor=encryptor))
    send(
        uow, settings, method="POST", path=f"/participants/MSISDN/{phone}", destination=None,
        body=AliasRegistration(
            fsp_id=settings.interop_participant_id, masked_name=user.name_masked
        ),
    )  # fmt: skip
    return True


def remove_alias(
    uow: UnitOfWork, *, user_id: str, settings: Settings, encryptor: Encryptor
) -> bool:
    """Queue the removal of the resident's alias (their wallet closes); returns whether a
    message was queued."""
    if not configured(settings):
        return False
    phone = msisdn(user_phone(uow, user_id=user_id, encryptor=encryptor))
    send(uow, settings, method="DELETE", path=f"/participants/MSISDN/{phone}", destination=None)
    return True


def sync_aliases(
    db: Database,
    *,
    settings: Settings,
    encryptor: Encryptor,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Register every active verified resident's alias again, a page per transaction;
    ``progress(seen, registered)`` after each page. Returns how many were queued."""
    after: int | None = None
    seen = registered = 0
    while True:

        def page(uow: UnitOfWork, after: int | None = after) -> tuple[int, int, int | None]:
            users, following = list_users(uow, limit=SYNC_PAGE, after=after)
            queued = sum(
                register_alias(uow, user_id=u.id, settings=settings, encryptor=encryptor)
                for u in users
                if u.real_name_verified and u.status == "active"
            )
            return len(users), queued, following

        count, queued, after = db.transact(page)
        seen, registered = seen + count, registered + queued
        if progress is not None:
            progress(seen, registered)
        if after is None:
            return registered


def announce_verified(
    db: Database, *, user_id: str, settings: Settings, encryptor: Encryptor
) -> bool:
    """After a real-name verification committed: register the alias in a transaction of its
    own. A failure here is logged, not raised (the verification stands; ``aliases sync``
    repairs it); returns whether a message was queued."""
    if not configured(settings):
        return False
    try:
        return db.transact(
            lambda uow: register_alias(uow, user_id=user_id, settings=settings, encryptor=encryptor)
        )
    except Exception:
        log.exception("alias registration failed", user_id=user_id)
        return False
