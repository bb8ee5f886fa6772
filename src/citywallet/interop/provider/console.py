"""What the operator console shows of this deployment as a switch participant: its identity,
the INTEROP_SETTLEMENT account as our books see it, transfers in flight and failed, the
settlement windows received and the aliases announced. Read-only queries."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select

from citywallet.identity.rules import mask_phone
from citywallet.interop import transport
from citywallet.interop.provider.common import INTEROP_SETTLEMENT
from citywallet.interop.provider.models import InteropTransfer, SettlementWindow
from citywallet.ledger import service as ledger
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.platform.models import OutboxMessage

ALIAS_PATH = "/participants/MSISDN/"


@dataclass(frozen=True)
class SettlementPosition:
    """INTEROP_SETTLEMENT's counters: credit balance = what we owe the switch."""

    credits_posted: int
    debits_posted: int
    credits_pending: int
    debits_pending: int

    @property
    def owed_to_switch(self) -> int:
        """Posted: positive when this deployment owes the switch, negative when owed."""
        return self.credits_posted - self.debits_posted


@dataclass(frozen=True)
class TransferLine:
    """One interop transfer as the operator sees it (the number masked)."""

    id: str
    switch_transfer_id: str
    role: str
    state: str
    counterparty_fsp: str
    counterparty: str
    amount: int
    payer_fee: int
    payee_fee: int
    error_code: str | None
    expires_at: int
    created_at: int
    resolved_at: int | None
    counterparty_fsp_name: str  # its display name at the switch, else its id


@dataclass(frozen=True)
class WindowLine:
    """A settlement window the switch told us about."""

    window_id: str
    net_amount: int
    transfer_count: int
    ledger_transfer_id: str | None
    closed_at: int
    processed_at: int


@dataclass(frozen=True)
class AliasLine:
    """The last message sent about one alias: registered or removed, delivered or not."""

    phone_masked: str
    action: str  # "register" | "remove"
    delivery: str  # "delivered" | "waiting" | "failed"
    sent_at: int


@dataclass(frozen=True)
class InteropOverview:
    """Everything on the console's interoperability page."""

    connected: bool
    participant_id: str
    switch_url: str
    public_url: str
    position: SettlementPosition | None
    counts: dict[str, int]
    in_flight: list[TransferLine]
    failed: list[TransferLine]
    windows: list[WindowLine]
    aliases_registered: int
    aliases_waiting: int
    aliases_failed: int
    recent_aliases: list[AliasLine]


def _masked(identifier: str) -> str:
    return mask_phone(identifier) if len(identifier) >= 7 else identifier


def _line(row: InteropTransfer) -> TransferLine:
    return TransferLine(
        row.public_id, row.transfer_id, row.role, row.state, row.counterparty_fsp,
        _masked(row.counterparty_identifier), row.amount, row.payer_fee, row.payee_fee,
        row.error_code, row.expires_at, row.created_at, row.resolved_at,
        row.counterparty_fsp_name or row.counterparty_fsp,
    )  # fmt: skip


def _transfers(uow: UnitOfWork, states: tuple[str, ...], limit: int) -> list[TransferLine]:
    rows = uow.session.scalars(
        select(InteropTransfer)
        .where(InteropTransfer.state.in_(states))
        .order_by(InteropTransfer.id.desc())
        .limit(limit)
    )
    return [_line(r) for r in rows]


def _position(uow: UnitOfWork) -> SettlementPosition | None:
    account_id = ledger.find_account(uow, owner_ref=INTEROP_SETTLEMENT)
    account = None if account_id is None else ledger.get_account(uow, account_id=account_id)
    if account is None:  # opened by the first interop transfer
        return None
    return SettlementPosition(
        account.credits_posted, account.debits_posted, account.credits_pending,
        account.debits_pending,
    )  # fmt: skip


def _aliases(uow: UnitOfWork, limit: int) -> tuple[dict[str, AliasLine], list[AliasLine]]:
    """The latest message per alias, from the interop outbox (the switch's directory is
    the truth; this is what this deployment told it)."""
    rows = uow.session.execute(
        select(
            OutboxMessage.payload, OutboxMessage.created_at, OutboxMessage.delivered_at,
            OutboxMessage.dead,
        )
        .where(
            OutboxMessage.topic == transport.TOPIC,
            OutboxMessage.payload.contains(ALIAS_PATH),
        )
        .order_by(OutboxMessage.id)
    ).all()  # fmt: skip
    latest: dict[str, AliasLine] = {}
    for payload, created_at, delivered_at, dead in rows:
        message = json.loads(payload)
        path = str(message.get("path", ""))
        if not path.startswith(ALIAS_PATH):
            continue
        phone = path.removeprefix(ALIAS_PATH)
        delivery = "delivered" if delivered_at else ("failed" if dead else "waiting")
        action = "register" if message.get("method") == "POST" else "remove"
        latest[phone] = AliasLine(_masked(phone), action, delivery, created_at)
    recent = sorted(latest.values(), key=lambda a: a.sent_at, reverse=True)[:limit]
    return latest, recent


def overview(uow: UnitOfWork, *, settings: Settings, limit: int = 50) -> InteropOverview:
    """The interoperability page: identity, settlement position, transfers, windows, aliases."""
    counts = dict(
        uow.session.execute(
            select(InteropTransfer.state, func.count()).group_by(InteropTransfer.state)
        ).all()
    )
    windows = [
        WindowLine(
            w.window_id,
            w.net_amount,
            w.transfer_count,
            w.ledger_transfer_id,
            w.closed_at,
            w.processed_at,
        )
        for w in uow.session.scalars(
            select(SettlementWindow).order_by(SettlementWindow.processed_at.desc()).limit(limit)
        )
    ]
    latest, recent = _aliases(uow, limit)
    registered = [a for a in latest.values() if a.action == "register"]
    return InteropOverview(
        connected=bool(settings.interop_participant_id and settings.interop_switch_url),
        participant_id=settings.interop_participant_id,
        switch_url=settings.interop_switch_url,
        public_url=settings.interop_public_url,
        position=_position(uow),
        counts={s: int(counts.get(s, 0)) for s in ("PREPARED", "COMMITTED", "ABORTED", "EXPIRED")},
        in_flight=_transfers(uow, ("PREPARED",), limit),
        failed=_transfers(uow, ("ABORTED", "EXPIRED"), limit),
        windows=windows,
        aliases_registered=sum(1 for a in registered if a.delivery == "delivered"),
        aliases_waiting=sum(1 for a in latest.values() if a.delivery == "waiting"),
        aliases_failed=sum(1 for a in latest.values() if a.delivery == "failed"),
        recent_aliases=recent,
    )
