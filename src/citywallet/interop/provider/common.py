"""What every part of the provider shares: this deployment's identity at the switch, the
outbox send, the interop settlement account, the MSISDN format and the ledger resolution of
an interop transfer (post on COMMITTED, void on abort or expiry)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from citywallet.identity.rules import normalize_phone
from citywallet.interop import transport
from citywallet.interop.messages import Message
from citywallet.interop.provider.models import InteropTransfer
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, Result, TransferFlags, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict
from citywallet.wallet import accounts, history

SWITCH = "switch"
INTEROP_SETTLEMENT = "platform:interop_settlement"
SECOND_US = 1_000_000
# The state residents see for each state of the wire.
PUBLIC_STATE = {
    "PREPARED": "processing",
    "COMMITTED": "committed",
    "ABORTED": "aborted",
    "EXPIRED": "expired",
}


class NotConnected(Conflict):
    """This deployment has no switch configured."""

    code = "interop_not_configured"
    status = 503
    title = "Not connected to a switch"


def configured(settings: Settings) -> bool:
    """Whether this deployment is a participant of a switch."""
    return bool(settings.interop_participant_id and settings.interop_switch_url)


def require_configured(settings: Settings) -> None:
    """Refuse (503 ``interop_not_configured``) when no switch is configured."""
    if not configured(settings):
        raise NotConnected("This wallet provider is not connected to a switch.")


def send(
    uow: UnitOfWork,
    settings: Settings,
    *,
    method: str,
    path: str,
    destination: str | None,
    body: Message | None = None,
) -> int:
    """Queue a signed message from this deployment to the switch (in ``uow``)."""
    return transport.send(
        uow,
        base_url=settings.interop_switch_url,
        method=method,
        path=path,
        source=settings.interop_participant_id,
        destination=destination,
        body=body,
    )


def provider_name(participant: str, name: str | None) -> str:
    """What people see of another provider: its display name, else its participant id."""
    return name or participant


def msisdn(phone: str) -> str:
    """The MSISDN alias of a mainland mobile number: its 11 national digits
    (``invalid_phone`` for anything else)."""
    return normalize_phone(phone).removeprefix("+86")


def new_uuid() -> str:
    """A message id for the wire (quotes, transfers)."""
    return str(uuid.uuid4())


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * SECOND_US)


def from_us(moment: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return datetime.fromtimestamp(moment / SECOND_US, tz=UTC)


def interop_account(uow: UnitOfWork) -> int:
    """The INTEROP_SETTLEMENT account: what this deployment owes the switch (credit side)
    or is owed by it (debit side); no overdraft flag, it swings both ways."""
    return accounts.platform_account(
        uow, owner_ref=INTEROP_SETTLEMENT, code=AccountCode.INTEROP_SETTLEMENT
    )


def pending_ids(row: InteropTransfer) -> list[str]:
    """The ledger's pending transfers of an interop transfer: the amount, and the fee if any."""
    fee = row.payer_fee if row.role == "payer" else row.payee_fee
    return [row.public_id] + ([f"{row.public_id}.fee"] if fee else [])


def require_on_books(results: list[Result], what: str) -> None:
    """Every result of a batch we computed must be on the books; anything else is a bug."""
    bad = [r for r in results if not r.on_books]
    if bad:
        raise RuntimeError(f"ledger refused {what}: {bad[0].value}")


def resolve(uow: UnitOfWork, row: InteropTransfer, *, state: str, code: str | None) -> None:
    """Post (``COMMITTED``) or void (``ABORTED``/``EXPIRED``) the pending transfers of a
    ``PREPARED`` row, on the switch's final word only; an aborted payment gives the payer's
    limit usage back."""
    assert row.state == "PREPARED", row.state
    accounts.lock_wallets(uow, user_ids=[row.user_id])
    commit = state == "COMMITTED"
    suffix, flag = (
        ("post", TransferFlags.POST_PENDING) if commit else ("void", TransferFlags.VOID_PENDING)
    )
    held = pending_ids(row)
    specs = [
        TransferSpec(
            id=f"{pending}.{suffix}",
            pending_id=pending,
            amount=None,
            flags=flag | (TransferFlags.LINKED if i < len(held) - 1 else 0),
            reference=row.transfer_id,
        )
        for i, pending in enumerate(held)
    ]
    require_on_books(ledger.post(uow, transfers=specs), f"resolving {row.public_id}")
    usage: dict[str, int] = json.loads(row.usage or "{}")
    if not commit and usage:
        accounts.lock_usage(uow, user_id=row.user_id, periods=sorted(usage))
        accounts.add_usage(uow, user_id=row.user_id, changes={p: -a for p, a in usage.items()})
    moment = now_us()
    row.state, row.error_code = state, code
    row.updated_at = row.resolved_at = moment
    history.set_status(
        uow,
        object_id=row.public_id,
        status="succeeded" if commit else "failed",
        transfer_ids=held + [s.id for s in specs],
    )
    uow.session.flush()
