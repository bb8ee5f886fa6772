"""Before a transfer: whom it would reach (masked), the people one paid lately, and the
resident's own receive code (收钱码). Read-only use cases; the transfer itself is
:func:`citywallet.wallet.transfers.send_transfer`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet import receive_code
from citywallet.wallet.closure import wallet_closed
from citywallet.wallet.models import Activity
from citywallet.wallet.people import active_user, find_recipient, label

RECENT_SCAN = 100  # transfer lines read to find the last distinct payees


@dataclass(frozen=True)
class RecipientView:
    """Whom money would reach, as the payer may see them before confirming."""

    user_id: str
    masked_name: str  # the masked real name (``*华``), else the masked phone
    phone_masked: str
    label: str  # masked name and masked phone together, as history lines show them


def recipient_preview(
    uow: UnitOfWork, *, user_id: str, to: str, encryptor: Encryptor
) -> RecipientView:
    """The resident a transfer from ``user_id`` to ``to`` (mobile number or ``usr_…``) would
    reach: ``recipient_not_found``, ``cannot_pay_self`` and ``recipient_unavailable`` are
    refused here as the transfer would refuse them. Moves nothing."""
    me = active_user(uow, user_id)
    payee = find_recipient(uow, to, encryptor)
    if payee.id == me.id:
        raise InvalidInput("You cannot send money to yourself.", code="cannot_pay_self")
    if payee.status != "active" or wallet_closed(uow, user_id=payee.id):
        raise Conflict(
            "The recipient cannot receive money right now.", code="recipient_unavailable"
        )
    return RecipientView(
        user_id=payee.id,
        masked_name=payee.name_masked or payee.phone_masked,
        phone_masked=payee.phone_masked,
        label=label(payee),
    )


@dataclass(frozen=True)
class RecentRecipient:
    """Someone the resident sent money to lately, newest first."""

    user_id: str
    label: str
    last_sent_at: int


def recent_recipients(uow: UnitOfWork, *, user_id: str, limit: int = 6) -> list[RecentRecipient]:
    """The last ``limit`` distinct people ``user_id`` transferred to (from their own history
    lines, newest first), with the label the latest line shows."""
    rows = uow.session.execute(
        select(
            Activity.counterparty_user_id,
            Activity.counterparty_label,
            Activity.created_at,
        )
        .where(
            Activity.user_id == user_id,
            Activity.kind == "transfer_out",
            Activity.counterparty_user_id.is_not(None),
        )
        .order_by(Activity.id.desc())
        .limit(RECENT_SCAN)
    ).all()
    found: dict[str, RecentRecipient] = {}
    for payee, shown, moment in rows:
        if payee is not None and payee not in found and len(found) < limit:
            found[payee] = RecentRecipient(payee, shown, moment)
    return list(found.values())


def my_receive_code(uow: UnitOfWork, *, user_id: str, amount: int | None = None) -> str:
    """The payload of the resident's own receive code, with ``amount`` (fen) if given;
    refused for a frozen or closed account."""
    me = active_user(uow, user_id)
    return receive_code.build(receive_code.ReceiveCode(me.id, amount))
