"""Restricted balances: money granted to a resident for spending only at some merchants and
only until a date (a government campaign's red packet, say), kept apart from their own.

Each balance is its own ledger account (``CUSTOMER_RESTRICTED``, no overdraft), one per
resident per source. Nothing but a merchant payment ever debits it, so it can never be
transferred, sent as a red packet or withdrawn: those debit the ordinary wallet account.

* Paying at a merchant in scope, restricted money pays first (soonest to expire first) and
  the payer's own money the rest, all legs in one linked ledger batch (``merchant.payments``
  calls :func:`plan_spend` and :func:`record_spend`).
* A refund returns the payer's own money first, then the restricted part, last spent first:
  to the balance while its source is valid and the balance is active, else to the funder
  (:func:`plan_return`, :func:`record_return`).
* At the end of the validity window, or when the wallet closes, what is left goes back to
  the funder, exactly once: the balance row is locked and marked, and the ledger transfer
  id derives from the account (:func:`reclaim_expired`, :func:`reclaim_for_user`).

Lock order: wallet rows, restricted balance rows (ascending id), usage rows, then the
ledger accounts inside ``ledger.post``. Source rows are never locked, so 50,000 residents
spending the same campaign's money do not contend on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.models import RestrictedBalance, RestrictedSource, RestrictedUse
from citywallet.wallet.rules import (
    Pot,
    Scope,
    Shop,
    return_order,
    returns_to_balance,
    spend_first,
    usable_at,
)

CHUNK = 900  # rows per IN (…) list, inside SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class SourceSpec:
    """A source of restricted money to register (``public_id`` is its owner's id)."""

    public_id: str
    name: str
    funder_account_id: int
    valid_from: int
    valid_until: int
    merchant_ids: Sequence[str] = ()
    districts: Sequence[str] = ()
    mccs: Sequence[str] = ()
    min_spend: int = 0


@dataclass(frozen=True)
class Grant:
    """Restricted money for one resident; ``transfer_id`` makes the grant idempotent."""

    user_id: str
    amount: int
    transfer_id: str


@dataclass(frozen=True)
class RestrictedView:
    """One restricted balance as its owner sees it."""

    source_id: str
    name: str
    granted: int
    available: int
    status: str  # active | reclaimed
    reclaimed: int
    reclaim_reason: str | None
    valid_from: int
    valid_until: int
    merchant_ids: list[str]
    districts: list[str]
    mccs: list[str]
    min_spend: int


@dataclass(frozen=True)
class Draw:
    """What one restricted balance pays towards a payment."""

    balance_id: int
    account_id: int
    amount: int


@dataclass(frozen=True)
class Giveback:
    """What one earlier use gives back in a refund, and to which account."""

    use_id: int
    account_id: int
    amount: int
    to_funder: bool


def _dump(values: Iterable[str]) -> str:
    return json.dumps(sorted({v for v in values if v}), ensure_ascii=False)


def scope_of(source: RestrictedSource) -> Scope:
    """The pure description of where and when a source's money may be spent."""
    return Scope(
        merchant_ids=frozenset(json.loads(source.merchant_ids)),
        districts=frozenset(json.loads(source.districts)),
        mccs=frozenset(json.loads(source.mccs)),
        min_spend=source.min_spend,
        valid_from=source.valid_from,
        valid_until=source.valid_until,
    )


# --- sources and grants -------------------------------------------------------------------


def create_source(uow: UnitOfWork, *, spec: SourceSpec) -> RestrictedSource:
    """Register a source of restricted money (its owner checked the spec)."""
    source = RestrictedSource(
        public_id=spec.public_id,
        name=spec.name,
        funder_account_id=spec.funder_account_id,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        merchant_ids=_dump(spec.merchant_ids),
        districts=_dump(spec.districts),
        mccs=_dump(spec.mccs),
        min_spend=spec.min_spend,
        created_at=now_us(),
    )
    uow.session.add(source)
    uow.session.flush()
    return source


def source_by_ref(uow: UnitOfWork, public_id: str) -> RestrictedSource | None:
    """The source registered under its owner's id, if any."""
    found: RestrictedSource | None = uow.session.scalar(
        select(RestrictedSource).where(RestrictedSource.public_id == public_id)
    )
    return found


def _granted_users(uow: UnitOfWork, source_pk: int, user_ids: list[str]) -> set[str]:
    if uow.dialect == "postgresql":
        # One statement joined to the ids as an array: an IN list per 900 ids was planned as
        # a scan that tested every row against the whole list (17 s of 50,000 grants).
        return {
            str(user_id)
            for (user_id,) in uow.session.connection().exec_driver_sql(
                "SELECT b.user_id FROM unnest(%(users)s::text[]) AS u(user_id) "
                "JOIN wallet_restricted_balances AS b "
                "ON b.source_id = %(source)s AND b.user_id = u.user_id",
                {"users": user_ids, "source": source_pk},
            )
        }
    found: set[str] = set()
    for start in range(0, len(user_ids), CHUNK):
        found.update(
            uow.session.scalars(
                select(RestrictedBalance.user_id).where(
                    RestrictedBalance.source_id == source_pk,
                    RestrictedBalance.user_id.in_(user_ids[start : start + CHUNK]),
                )
            )
        )
    return found


def grant(uow: UnitOfWork, *, source: RestrictedSource, grants: Sequence[Grant]) -> int:
    """Open a restricted balance for each resident not granted yet and fund it from the
    source's funder account, all in one ledger batch; returns how many were new.

    Safe to repeat: residents who already have a balance of this source are skipped (a
    balance, its account and its funding transfer commit together; the transfer id, unique
    in the ledger, is a second guard). ``insufficient_funds`` if the funder account cannot
    cover the batch (nothing is granted then). The ledger's bulk path opens and funds the
    accounts (:func:`citywallet.ledger.service.open_funded_accounts`)."""
    done = _granted_users(uow, source.id, [g.user_id for g in grants])
    new = [g for g in grants if g.user_id not in done]
    if not new:
        return 0
    # The accounts are opened and funded in one ledger call (fresh accounts, one source).
    account_ids, results = ledger.open_funded_accounts(
        uow,
        source_account_id=source.funder_account_id,
        fundings=[
            ledger.Funding(
                AccountSpec(
                    CURRENCY,
                    AccountCode.CUSTOMER_RESTRICTED,
                    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                    f"rst:{source.public_id}:{g.user_id}",
                ),
                g.transfer_id,
                g.amount,
                TransferCode.CAMPAIGN_GRANT,
                source.public_id,
            )
            for g in new
        ],
    )
    if Result.EXCEEDS_CREDITS in results:
        raise Conflict("The funder account cannot cover these grants.", code="insufficient_funds")
    if not all(r is Result.OK for r in results):
        raise RuntimeError(f"ledger refused grants of {source.public_id}: {set(results)}")
    moment = now_us()
    if uow.dialect == "postgresql":  # one statement from column arrays, whatever the batch
        uow.session.connection().exec_driver_sql(
            "INSERT INTO wallet_restricted_balances (source_id, user_id, ledger_account_id, "
            "granted, status, reclaimed, created_at) SELECT %(source)s, u, a, g, 'active', 0, "
            "%(now)s FROM unnest(%(users)s::text[], %(accounts)s::bigint[], "
            "%(amounts)s::bigint[]) AS t(u, a, g)",
            {
                "source": source.id,
                "now": moment,
                "users": [g.user_id for g in new],
                "accounts": account_ids,
                "amounts": [g.amount for g in new],
            },
        )
    else:
        uow.session.execute(
            insert(RestrictedBalance),
            [
                {
                    "source_id": source.id,
                    "user_id": g.user_id,
                    "ledger_account_id": account,
                    "granted": g.amount,
                    "status": "active",
                    "reclaimed": 0,
                    "created_at": moment,
                }
                for g, account in zip(new, account_ids, strict=True)
            ],
        )
    return len(new)


# --- what a resident has ------------------------------------------------------------------


def balances_of(uow: UnitOfWork, *, user_id: str) -> list[RestrictedView]:
    """The resident's restricted balances, newest first (reclaimed ones too, at zero)."""
    rows = uow.session.execute(
        select(RestrictedBalance, RestrictedSource)
        .join(RestrictedSource, RestrictedSource.id == RestrictedBalance.source_id)
        .where(RestrictedBalance.user_id == user_id)
        .order_by(RestrictedBalance.id.desc())
    ).all()
    views = ledger.get_accounts(uow, ids=[b.ledger_account_id for b, _ in rows])
    result = []
    for balance, source in rows:
        scope = scope_of(source)
        result.append(
            RestrictedView(
                source_id=source.public_id,
                name=source.name,
                granted=balance.granted,
                available=views[balance.ledger_account_id].available,
                status=balance.status,
                reclaimed=balance.reclaimed,
                reclaim_reason=balance.reclaim_reason,
                valid_from=source.valid_from,
                valid_until=source.valid_until,
                merchant_ids=sorted(scope.merchant_ids),
                districts=sorted(scope.districts),
                mccs=sorted(scope.mccs),
                min_spend=source.min_spend,
            )
        )
    return result


def usable_amount(uow: UnitOfWork, *, user_id: str, shop: Shop, amount: int, moment: int) -> int:
    """How much restricted money a payment of ``amount`` at ``shop`` would use (no locks:
    for showing a payer before they confirm)."""
    pots = _pots(uow, user_id=user_id, shop=shop, amount=amount, moment=moment, lock=False)
    return sum(part for _, part in spend_first([p for p, _ in pots], amount))


def _pots(
    uow: UnitOfWork, *, user_id: str, shop: Shop, amount: int, moment: int, lock: bool
) -> list[tuple[Pot, RestrictedBalance]]:
    query = (
        select(RestrictedBalance, RestrictedSource)
        .join(RestrictedSource, RestrictedSource.id == RestrictedBalance.source_id)
        .where(
            RestrictedBalance.user_id == user_id,
            RestrictedBalance.status == "active",
            RestrictedSource.valid_from <= moment,
            RestrictedSource.valid_until > moment,
        )
        .order_by(RestrictedBalance.id)
    )
    if lock:  # the balance rows only: the source row is shared by every winner
        query = query.with_for_update(of=RestrictedBalance).execution_options(
            populate_existing=True
        )
    rows = [
        (b, s)
        for b, s in uow.session.execute(query).all()
        if usable_at(scope_of(s), shop, amount=amount, moment=moment)
    ]
    if not rows:
        return []
    views = ledger.get_accounts(uow, ids=[b.ledger_account_id for b, _ in rows])
    return [
        (Pot(b.id, views[b.ledger_account_id].available, s.valid_until), b)
        for b, s in rows
        if views[b.ledger_account_id].available > 0
    ]


# --- paying and refunding -----------------------------------------------------------------


def plan_spend(
    uow: UnitOfWork, *, user_id: str, shop: Shop, amount: int, moment: int
) -> list[Draw]:
    """Lock the payer's restricted balances usable at ``shop`` and say what each pays of
    ``amount`` (restricted money first, soonest to expire first); empty when none apply."""
    pots = _pots(uow, user_id=user_id, shop=shop, amount=amount, moment=moment, lock=True)
    by_key = {pot.key: balance for pot, balance in pots}
    return [
        Draw(key, by_key[key].ledger_account_id, part)
        for key, part in spend_first([p for p, _ in pots], amount)
    ]


def record_spend(
    uow: UnitOfWork,
    *,
    draws: Sequence[Draw],
    transfer_ids: Sequence[str],
    payment_ref: str,
    shop: Shop,
    own_amount: int,
    moment: int,
) -> None:
    """Remember what a payment took from each balance (for refunds and reports)."""
    for index, (draw, transfer_id) in enumerate(zip(draws, transfer_ids, strict=True)):
        uow.session.add(
            RestrictedUse(
                balance_id=draw.balance_id,
                payment_ref=payment_ref,
                merchant_ref=shop.merchant_id,
                district=shop.district,
                mcc=shop.mcc,
                spent=draw.amount,
                own_amount=own_amount if index == 0 else 0,
                returned=0,
                returned_to_funder=0,
                transfer_id=transfer_id,
                created_at=moment,
                updated_at=moment,
            )
        )
    uow.session.flush()


def plan_return(uow: UnitOfWork, *, payment_ref: str, amount: int, moment: int) -> list[Giveback]:
    """Lock a payment's uses and their balances and say where ``amount`` of restricted money
    goes back: to the balance while it is active and its source valid, else to the funder."""
    uses = list(
        uow.session.scalars(
            select(RestrictedUse)
            .where(RestrictedUse.payment_ref == payment_ref)
            .order_by(RestrictedUse.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    balances = {
        b.id: b
        for b in uow.session.scalars(
            select(RestrictedBalance)
            .where(RestrictedBalance.id.in_(sorted({u.balance_id for u in uses})))
            .order_by(RestrictedBalance.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    sources = {
        s.id: s
        for s in uow.session.scalars(
            select(RestrictedSource).where(
                RestrictedSource.id.in_({b.source_id for b in balances.values()})
            )
        )
    }
    parts = return_order(
        [(u.id, u.spent - u.returned - u.returned_to_funder) for u in uses], amount
    )
    by_id = {u.id: u for u in uses}
    givebacks = []
    for use_id, part in parts:
        balance = balances[by_id[use_id].balance_id]
        source = sources[balance.source_id]
        valid = returns_to_balance(
            active=balance.status == "active", valid_until=source.valid_until, moment=moment
        )
        account = balance.ledger_account_id if valid else source.funder_account_id
        givebacks.append(Giveback(use_id, account, part, not valid))
    return givebacks


def record_return(uow: UnitOfWork, *, givebacks: Sequence[Giveback], moment: int) -> None:
    """Count what a refund gave back on each use (locked by :func:`plan_return`)."""
    for giveback in givebacks:
        use = uow.session.get(RestrictedUse, giveback.use_id)
        assert use is not None
        if giveback.to_funder:
            use.returned_to_funder += giveback.amount
        else:
            use.returned += giveback.amount
        use.updated_at = moment
    uow.session.flush()


# --- reclaim ------------------------------------------------------------------------------


def reclaim_transfer_id(account_id: int) -> str:
    """The one ledger transfer that can ever empty a restricted account back to its funder."""
    return f"rst_{account_id}.reclaim"


def reclaim_expired(
    uow: UnitOfWork, *, now: int | None = None, limit: int = 5000, source_id: int | None = None
) -> int:
    """Return what is left of balances whose source's window has ended to the funder (of
    one source, or all); at most ``limit`` balances per call (run again until 0). Returns
    how many were reclaimed."""
    moment = now if now is not None else now_us()
    query = (
        select(RestrictedBalance, RestrictedSource)
        .join(RestrictedSource, RestrictedSource.id == RestrictedBalance.source_id)
        .where(RestrictedBalance.status == "active", RestrictedSource.valid_until <= moment)
    )
    if source_id is not None:
        query = query.where(RestrictedBalance.source_id == source_id)
    rows = [
        (balance, source)
        for balance, source in uow.session.execute(
            query.order_by(RestrictedBalance.id)
            .limit(limit)
            .with_for_update(of=RestrictedBalance, skip_locked=True)
            .execution_options(populate_existing=True)
        )
    ]
    return _reclaim(uow, rows, reason="expired", moment=moment)


def reclaim_source_bulk(
    uow: UnitOfWork, *, source: RestrictedSource, now: int, limit: int = 10_000
) -> int:
    """:func:`reclaim_expired` for one source whose window has ended, in a fixed number of
    set-based statements per batch (the campaign's reclaim of 50,000 balances): select and
    lock up to ``limit`` active balances (``SKIP LOCKED``), read their accounts, post the
    reclaims through the ledger (its rules decide, as for one balance), then mark the rows
    from column arrays. Same outcome, transfer ids and reason as :func:`reclaim_expired`.
    On SQLite it is :func:`reclaim_expired`."""
    if uow.dialect != "postgresql":
        return reclaim_expired(uow, now=now, limit=limit, source_id=source.id)
    if source.valid_until > now:
        return 0
    conn = uow.session.connection()
    rows = conn.exec_driver_sql(
        "SELECT id, ledger_account_id FROM wallet_restricted_balances "
        "WHERE source_id = %(source)s AND status = 'active' ORDER BY id LIMIT %(limit)s "
        "FOR UPDATE SKIP LOCKED",
        {"source": source.id, "limit": limit},
    ).all()
    if not rows:
        return 0
    views = ledger.get_accounts_bulk(uow, ids=[int(account) for _, account in rows])
    left = [views[int(account)].balance for _, account in rows]
    specs = [
        TransferSpec(
            id=reclaim_transfer_id(int(account)),
            debit_account_id=int(account),
            credit_account_id=source.funder_account_id,
            amount=amount,
            ledger=CURRENCY,
            code=TransferCode.CAMPAIGN_RECLAIM,
            reference=source.public_id,
        )
        for (_, account), amount in zip(rows, left, strict=True)
        if amount > 0
    ]
    conn.exec_driver_sql(
        "UPDATE wallet_restricted_balances AS b SET status = 'reclaimed', reclaimed = v.rest, "
        "reclaim_reason = 'expired', reclaimed_at = %(now)s "
        "FROM unnest(%(ids)s::bigint[], %(rest)s::bigint[]) AS v(id, rest) WHERE b.id = v.id",
        {"now": now, "ids": [int(pk) for pk, _ in rows], "rest": left},
    )
    results = ledger.post(uow, transfers=specs)
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused reclaims: {set(results)}")
    return len(rows)


def reclaim_for_user(uow: UnitOfWork, *, user_id: str, now: int | None = None) -> int:
    """Return every active restricted balance of a resident whose wallet closes."""
    moment = now if now is not None else now_us()
    rows = [
        (balance, source)
        for balance, source in uow.session.execute(
            select(RestrictedBalance, RestrictedSource)
            .join(RestrictedSource, RestrictedSource.id == RestrictedBalance.source_id)
            .where(RestrictedBalance.user_id == user_id, RestrictedBalance.status == "active")
            .order_by(RestrictedBalance.id)
            .with_for_update(of=RestrictedBalance)
            .execution_options(populate_existing=True)
        )
    ]
    return _reclaim(uow, rows, reason="wallet_closed", moment=moment)


def _reclaim(
    uow: UnitOfWork,
    rows: list[tuple[RestrictedBalance, RestrictedSource]],
    *,
    reason: str,
    moment: int,
) -> int:
    if not rows:
        return 0
    views = ledger.get_accounts(uow, ids=[b.ledger_account_id for b, _ in rows])
    specs = []
    for balance, source in rows:
        left = views[balance.ledger_account_id].balance
        balance.status, balance.reclaimed = "reclaimed", left
        balance.reclaim_reason, balance.reclaimed_at = reason, moment
        if left > 0:
            specs.append(
                TransferSpec(
                    id=reclaim_transfer_id(balance.ledger_account_id),
                    debit_account_id=balance.ledger_account_id,
                    credit_account_id=source.funder_account_id,
                    amount=left,
                    ledger=CURRENCY,
                    code=TransferCode.CAMPAIGN_RECLAIM,
                    reference=source.public_id,
                )
            )
    uow.session.flush()
    results = ledger.post(uow, transfers=specs)
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused reclaims: {set(results)}")
    return len(rows)
