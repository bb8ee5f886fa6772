"""The posting engine through ``citywallet.ledger.service``, on SQLite and on PostgreSQL.

Every test goes through ``db.transact`` (one unit of work per call, committed) exactly as
the application does, and every test that moves money ends with ``assert_ledger_clean``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountSpec, AccountView
from citywallet.ledger.types import (
    MAX_AMOUNT,
    AccountCode,
    AccountFlags,
    Result,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferSpec,
)
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import assert_ledger_clean

CNY = "CNY"
NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
STAY_DRAWN = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING
VOID = TransferFlags.VOID_PENDING
LINKED = TransferFlags.LINKED
P2P = TransferCode.P2P
TOPUP = TransferCode.TOPUP


# --- helpers ------------------------------------------------------------------------------


def open_accounts(db: Database, *specs: AccountSpec) -> list[int]:
    return db.transact(lambda uow: ledger.create_accounts(uow, accounts=list(specs)))


def customer(ledger_code: str = CNY, owner: str | None = None) -> AccountSpec:
    return AccountSpec(ledger_code, AccountCode.CUSTOMER_WALLET, NO_OVERDRAFT, owner)


def platform(
    code: AccountCode = AccountCode.BANK_SETTLEMENT, ledger_code: str = CNY
) -> AccountSpec:
    return AccountSpec(ledger_code, code)


def post(db: Database, *transfers: TransferSpec, system: bool = False) -> list[Result]:
    return db.transact(lambda uow: ledger.post(uow, transfers=list(transfers), system=system))


def views(db: Database, *ids: int) -> dict[int, AccountView]:
    with db.uow(readonly=True) as uow:
        return ledger.get_accounts(uow, ids=ids)


def view(db: Database, account_id: int) -> AccountView:
    return views(db, account_id)[account_id]


def counters(db: Database, account_id: int) -> tuple[int, int, int, int]:
    v = view(db, account_id)
    return (v.debits_pending, v.debits_posted, v.credits_pending, v.credits_posted)


def get_transfer(db: Database, transfer_id: str) -> Transfer | None:
    with db.uow(readonly=True) as uow:
        return ledger.get_transfer(uow, transfer_id=transfer_id)


def scalar(db: Database, sql: str, **params: object) -> int:
    with db.uow(readonly=True) as uow:
        return int(uow.session.execute(text(sql), params).scalar_one())


def transfer_count(db: Database) -> int:
    return scalar(db, "SELECT COUNT(*) FROM ledger_transfers")


def state(db: Database) -> tuple[object, ...]:
    """Everything posting may change: every account's counters, transfers, open timeouts."""
    with db.uow(readonly=True) as uow:
        accounts = uow.session.execute(
            text(
                "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted "
                "FROM ledger_accounts ORDER BY id"
            )
        ).all()
        transfers = uow.session.execute(
            text("SELECT seq, id, amount, flags, hash FROM ledger_transfers ORDER BY seq")
        ).all()
        timeouts = uow.session.execute(
            text("SELECT transfer_id, expires_at FROM ledger_pending_timeouts ORDER BY 1")
        ).all()
    return tuple(map(tuple, accounts)), tuple(map(tuple, transfers)), tuple(map(tuple, timeouts))


@dataclass
class Clock:
    """The ledger's clock, movable forward (only the posting engine reads it)."""

    offset_us: int = 0

    def advance(self, seconds: float) -> None:
        self.offset_us += int(seconds * 1_000_000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    real = ledger.now_us
    monkeypatch.setattr(ledger, "now_us", lambda: real() + moved.offset_us)
    return moved


# --- every result code --------------------------------------------------------------------


def test_every_result_code_in_a_realistic_case(db: Database, clock: Clock) -> None:
    """Each Result the engine can give, each from a plausible request; rejections change nothing."""
    bank, alice, bob, fund, usd, mint, vault, other = open_accounts(
        db,
        platform(),
        customer(owner="usr_alice"),
        customer(owner="usr_bob"),
        AccountSpec(CNY, AccountCode.CAMPAIGN_FUNDS, STAY_DRAWN),
        customer("USD", owner="usr_alice"),
        platform(AccountCode.OPERATING, "HKD"),
        platform(AccountCode.OPERATING, "HKD"),
        platform(AccountCode.OPERATING, "HKD"),
    )
    seen: set[Result] = set()

    setup = [
        TransferSpec("top", bank, alice, 10_000, CNY, TOPUP, reference="ord_1"),
        TransferSpec("grant", fund, bob, 500, CNY, TransferCode.CAMPAIGN_GRANT),
        TransferSpec("hold", alice, bob, 1_000, CNY, P2P, flags=PENDING),
        TransferSpec("hold-posted", alice, bob, 200, CNY, P2P, flags=PENDING),
        TransferSpec("post-held", pending_id="hold-posted", flags=POST, amount=None),
        TransferSpec("hold-voided", alice, bob, 300, CNY, P2P, flags=PENDING),
        TransferSpec("void-held", pending_id="hold-voided", flags=VOID),
        TransferSpec("short", alice, bob, 100, CNY, P2P, flags=PENDING, timeout=60),
        TransferSpec("mint", mint, vault, MAX_AMOUNT, "HKD", TransferCode.SEED),
    ]
    results = post(db, *setup)
    assert results == [Result.OK] * len(setup)
    seen.update(results)
    alice_now = view(db, alice)
    assert (alice_now.balance, alice_now.available) == (9_800, 8_700)
    baseline = state(db)

    def rejected(expected: list[Result], *specs: TransferSpec, system: bool = False) -> None:
        got = post(db, *specs, system=system)
        assert got == expected, specs
        seen.update(got)
        assert state(db) == baseline, f"{expected} changed the books"

    missing = max(bank, alice, bob, fund, usd, mint, vault, other) + 1_000
    long_id = "x" * 65

    # Retries of a recorded transfer.
    rejected([Result.EXISTS], setup[0])
    rejected(
        [Result.EXISTS_WITH_DIFFERENT_FIELDS],
        TransferSpec("top", bank, alice, 10_001, CNY, TOPUP, reference="ord_1"),
    )
    # What the transfer says about itself.
    rejected([Result.ID_MUST_NOT_BE_EMPTY], TransferSpec("", bank, alice, 1, CNY, TOPUP))
    rejected([Result.ID_TOO_LONG], TransferSpec(long_id, bank, alice, 1, CNY, TOPUP))
    rejected(
        [Result.FLAGS_RESERVED],
        TransferSpec("fake-expiry", pending_id="hold", flags=VOID | TransferFlags.EXPIRED),
    )
    rejected([Result.FLAGS_RESERVED], TransferSpec("f64", alice, bob, 1, CNY, P2P, flags=64))
    rejected(
        [Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE],
        TransferSpec("pv", alice, bob, 1, CNY, P2P, flags=PENDING | VOID, pending_id="hold"),
    )
    rejected(
        [Result.TIMEOUT_MUST_NOT_BE_NEGATIVE],
        TransferSpec("neg-t", alice, bob, 1, CNY, P2P, flags=PENDING, timeout=-1),
    )
    rejected(
        [Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER],
        TransferSpec("plain-t", alice, bob, 1, CNY, P2P, timeout=60),
    )
    rejected(
        [Result.AMOUNT_TOO_LARGE], TransferSpec("huge", bank, alice, MAX_AMOUNT + 1, CNY, TOPUP)
    )
    rejected([Result.PENDING_ID_REQUIRED], TransferSpec("no-pid", flags=POST, amount=None))
    rejected([Result.AMOUNT_MUST_BE_POSITIVE], TransferSpec("zero", alice, bob, 0, CNY, P2P))
    rejected([Result.AMOUNT_MUST_BE_POSITIVE], TransferSpec("none", alice, bob, None, CNY, P2P))
    rejected(
        [Result.AMOUNT_MUST_BE_POSITIVE],
        TransferSpec("neg-post", pending_id="hold", flags=POST, amount=-1),
    )
    rejected(
        [Result.PENDING_ID_MUST_BE_EMPTY],
        TransferSpec("pid", alice, bob, 10, CNY, P2P, pending_id="hold"),
    )
    rejected([Result.ACCOUNTS_MUST_BE_DIFFERENT], TransferSpec("self", alice, alice, 1, CNY, P2P))
    rejected([Result.CODE_MUST_NOT_BE_ZERO], TransferSpec("no-code", alice, bob, 1, CNY, 0))
    # What the accounts say.
    rejected([Result.DEBIT_ACCOUNT_NOT_FOUND], TransferSpec("d404", missing, bob, 1, CNY, P2P))
    rejected([Result.CREDIT_ACCOUNT_NOT_FOUND], TransferSpec("c404", alice, missing, 1, CNY, P2P))
    rejected(
        [Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER],
        TransferSpec("fx", alice, usd, 1, CNY, P2P),
    )
    rejected(
        [Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS],
        TransferSpec("usd-label", alice, bob, 1, "USD", P2P),
    )
    rejected(
        [Result.EXCEEDS_CREDITS],
        TransferSpec("too-much", alice, bob, alice_now.available + 1, CNY, P2P),
    )
    rejected(
        [Result.EXCEEDS_DEBITS],
        TransferSpec("reclaim", bob, fund, 501, CNY, TransferCode.CAMPAIGN_RECLAIM),
    )
    rejected([Result.OVERFLOWS], TransferSpec("ovf-c", other, vault, 1, "HKD", TransferCode.SEED))
    rejected([Result.OVERFLOWS], TransferSpec("ovf-d", mint, other, 1, "HKD", TransferCode.SEED))
    # What the pending transfer says.
    rejected(
        [Result.PENDING_TRANSFER_NOT_FOUND],
        TransferSpec("p404", pending_id="no-such-hold", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_NOT_PENDING], TransferSpec("ptop", pending_id="top", flags=VOID)
    )
    rejected(
        [Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT],
        TransferSpec("pd", bank, 0, None, pending_id="hold", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT],
        TransferSpec("pc", alice, bank, None, pending_id="hold", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER],
        TransferSpec("pl", amount=None, ledger="USD", pending_id="hold", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE],
        TransferSpec("pk", amount=None, code=TOPUP, pending_id="hold", flags=POST),
    )
    rejected(
        [Result.EXCEEDS_PENDING_TRANSFER_AMOUNT],
        TransferSpec("p-over", pending_id="hold", flags=POST, amount=1_001),
    )
    rejected(
        [Result.EXCEEDS_PENDING_TRANSFER_AMOUNT],
        TransferSpec("v-part", pending_id="hold", flags=VOID, amount=500),
    )
    rejected(
        [Result.PENDING_TRANSFER_ALREADY_POSTED],
        TransferSpec("post-again", pending_id="hold-posted", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_ALREADY_VOIDED],
        TransferSpec("post-voided", pending_id="hold-voided", flags=POST),
    )
    rejected(
        [Result.PENDING_TRANSFER_NOT_EXPIRED],
        TransferSpec("exp-early", pending_id="hold", flags=VOID | TransferFlags.EXPIRED),
        system=True,
    )
    # Linked chains.
    rejected(
        [Result.LINKED_EVENT_FAILED, Result.EXCEEDS_CREDITS],
        TransferSpec("pay", alice, bob, 100, CNY, TransferCode.PAYMENT, flags=LINKED),
        TransferSpec("fee", alice, bank, 100_000, CNY, TransferCode.FEE),
    )
    rejected(
        [Result.LINKED_EVENT_FAILED, Result.LINKED_EVENT_CHAIN_OPEN],
        TransferSpec("open-1", alice, bob, 1, CNY, P2P, flags=LINKED),
        TransferSpec("open-2", alice, bob, 1, CNY, P2P, flags=LINKED),
    )
    # Time passes: the 60-second hold can no longer be posted by its client.
    clock.advance(61)
    rejected(
        [Result.PENDING_TRANSFER_EXPIRED],
        TransferSpec("post-late", pending_id="short", flags=POST, amount=None),
    )

    assert seen == set(Result), f"never produced: {sorted(set(Result) - seen)}"
    assert_ledger_clean(db)


# --- two-phase ----------------------------------------------------------------------------


def test_two_phase_reserve_post_full_post_partial_void(db: Database) -> None:
    bank, alice, shop = open_accounts(db, platform(), customer(), customer())
    assert post(db, TransferSpec("top", bank, alice, 10_000, CNY, TOPUP)) == [Result.OK]

    # A pending transfer reserves: available drops, balance does not.
    assert post(
        db, TransferSpec("h1", alice, shop, 3_000, CNY, TransferCode.PAYMENT, flags=PENDING)
    ) == [Result.OK]
    a, s = view(db, alice), view(db, shop)
    assert (a.balance, a.available, a.debits_pending) == (10_000, 7_000, 3_000)
    assert (s.balance, s.credits_pending) == (0, 3_000)
    # The reservation is real: the rest cannot be spent twice.
    assert post(db, TransferSpec("big", alice, shop, 7_001, CNY, P2P)) == [Result.EXCEEDS_CREDITS]

    # Post in full (amount=None inherits everything).
    assert post(db, TransferSpec("h1-post", pending_id="h1", flags=POST, amount=None)) == [
        Result.OK
    ]
    a, s = view(db, alice), view(db, shop)
    assert (a.balance, a.available, a.debits_pending) == (7_000, 7_000, 0)
    assert (s.balance, s.credits_pending) == (3_000, 0)
    posted = get_transfer(db, "h1-post")
    assert posted is not None
    assert (posted.amount, posted.debit_account_id, posted.credit_account_id) == (
        3_000,
        alice,
        shop,
    )
    assert (posted.pending_id, posted.code, posted.ledger) == ("h1", TransferCode.PAYMENT, CNY)

    # Post in part: the remainder is released.
    post(db, TransferSpec("h2", alice, shop, 2_000, CNY, TransferCode.PAYMENT, flags=PENDING))
    assert view(db, alice).available == 5_000
    assert post(db, TransferSpec("h2-post", pending_id="h2", flags=POST, amount=500)) == [Result.OK]
    a, s = view(db, alice), view(db, shop)
    assert (a.balance, a.available, a.debits_pending) == (6_500, 6_500, 0)
    assert (s.balance, s.credits_pending) == (3_500, 0)
    partial = get_transfer(db, "h2-post")
    assert partial is not None
    assert partial.amount == 500

    # Void: everything released, nothing moves.
    post(db, TransferSpec("h3", alice, shop, 1_000, CNY, TransferCode.PAYMENT, flags=PENDING))
    assert post(db, TransferSpec("h3-void", pending_id="h3", flags=VOID)) == [Result.OK]
    a, s = view(db, alice), view(db, shop)
    assert (a.balance, a.available, a.debits_pending) == (6_500, 6_500, 0)
    assert (s.balance, s.credits_pending) == (3_500, 0)
    voided = get_transfer(db, "h3-void")
    assert voided is not None
    assert (voided.amount, voided.flags) == (1_000, VOID)

    # A pending transfer is resolved once; refusals change nothing.
    before = state(db)
    assert post(db, TransferSpec("h1-post-2", pending_id="h1", flags=POST)) == [
        Result.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert post(db, TransferSpec("h1-void", pending_id="h1", flags=VOID)) == [
        Result.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert post(db, TransferSpec("h3-post", pending_id="h3", flags=POST, amount=None)) == [
        Result.PENDING_TRANSFER_ALREADY_VOIDED
    ]
    assert post(db, TransferSpec("h3-void-2", pending_id="h3", flags=VOID)) == [
        Result.PENDING_TRANSFER_ALREADY_VOIDED
    ]
    assert state(db) == before
    # Two resolutions of one pending in one batch: the second is refused.
    post(db, TransferSpec("h4", alice, shop, 100, CNY, P2P, flags=PENDING))
    assert post(
        db,
        TransferSpec("h4-post", pending_id="h4", flags=POST, amount=40),
        TransferSpec("h4-void", pending_id="h4", flags=VOID),
    ) == [Result.OK, Result.PENDING_TRANSFER_ALREADY_POSTED]
    a = view(db, alice)
    assert (a.balance, a.debits_pending) == (6_460, 0)
    assert get_transfer(db, "h4-void") is None

    # Reserve and resolve inside one batch.
    assert post(
        db,
        TransferSpec("h5", alice, shop, 60, CNY, P2P, flags=PENDING, timeout=300),
        TransferSpec("h5-post", pending_id="h5", flags=POST, amount=None),
    ) == [Result.OK, Result.OK]
    assert scalar(db, "SELECT COUNT(*) FROM ledger_pending_timeouts") == 0
    a = view(db, alice)
    assert (a.balance, a.debits_pending) == (6_400, 0)
    assert_ledger_clean(db)


# --- expiry -------------------------------------------------------------------------------


def test_expiry_voids_once_and_a_late_post_is_expired(db: Database, clock: Clock) -> None:
    bank, alice, bob = open_accounts(db, platform(), customer(), customer())
    post(db, TransferSpec("top", bank, alice, 5_000, CNY, TOPUP))
    assert (
        post(
            db,
            TransferSpec("soon", alice, bob, 1_000, CNY, P2P, flags=PENDING, timeout=60),
            TransferSpec("later", alice, bob, 700, CNY, P2P, flags=PENDING, timeout=3_600),
            TransferSpec("never", alice, bob, 300, CNY, P2P, flags=PENDING),
            TransferSpec("settled", alice, bob, 200, CNY, P2P, flags=PENDING, timeout=60),
        )
        == [Result.OK] * 4
    )
    assert post(db, TransferSpec("settle", pending_id="settled", flags=POST)) == [Result.OK]
    soon = get_transfer(db, "soon")
    assert soon is not None
    assert soon.expires_at == soon.timestamp + 60_000_000
    assert view(db, alice).debits_pending == 2_000

    def expire(at: int) -> int:
        return db.transact(lambda uow: ledger.expire_pending(uow, now=at))

    # One microsecond early: nothing expires.
    assert expire(soon.expires_at - 1) == 0
    assert view(db, alice).debits_pending == 2_000

    # At the deadline the job voids it, with the ledger's own EXPIRED flag.
    assert expire(soon.expires_at) == 1
    void_id = ledger.expiry_void_id("soon")
    void = get_transfer(db, void_id)
    assert void is not None
    assert (void.pending_id, void.amount) == ("soon", 1_000)
    assert void.flags == VOID | TransferFlags.EXPIRED
    a, b = view(db, alice), view(db, bob)
    assert (a.balance, a.debits_pending, a.available) == (4_800, 1_000, 3_800)
    assert (b.balance, b.credits_pending) == (200, 1_000)

    # Running the job again (even much later than "soon") voids nothing more.
    after_first = state(db)
    assert expire(soon.expires_at) == 0
    assert expire(soon.expires_at + 1_000_000) == 0
    assert state(db) == after_first
    # A retry of the very same void is idempotent too.
    retry = TransferSpec(
        void_id, pending_id="soon", flags=VOID | TransferFlags.EXPIRED, amount=None
    )
    assert post(db, retry, system=True) == [Result.EXISTS]
    assert state(db) == after_first

    # The client comes back after expiry, before and after the job has run.
    assert post(db, TransferSpec("soon-post", pending_id="soon", flags=POST)) == [
        Result.PENDING_TRANSFER_EXPIRED
    ]
    assert post(db, TransferSpec("soon-void", pending_id="soon", flags=VOID)) == [
        Result.PENDING_TRANSFER_EXPIRED
    ]
    clock.advance(3_601)
    assert post(db, TransferSpec("later-post", pending_id="later", flags=POST)) == [
        Result.PENDING_TRANSFER_EXPIRED
    ]
    assert state(db) == after_first

    # "later" goes at its own deadline; "never" has no timeout and stays held.
    later = get_transfer(db, "later")
    assert later is not None
    assert later.expires_at is not None
    assert expire(later.expires_at + 5) == 1
    assert expire(later.expires_at + 10**12) == 0
    a = view(db, alice)
    assert (a.balance, a.debits_pending) == (4_800, 300)
    assert scalar(db, "SELECT COUNT(*) FROM ledger_pending_timeouts") == 0
    assert post(db, TransferSpec("never-post", pending_id="never", flags=POST)) == [Result.OK]
    assert view(db, bob).balance == 500
    assert_ledger_clean(db)


def test_expiry_job_limit_takes_the_oldest_first(db: Database) -> None:
    bank, alice, bob = open_accounts(db, platform(), customer(), customer())
    post(db, TransferSpec("top", bank, alice, 1_000, CNY, TOPUP))
    holds = [
        TransferSpec(f"h{i}", alice, bob, 10, CNY, P2P, flags=PENDING, timeout=10 + i)
        for i in range(5)
    ]
    assert post(db, *holds) == [Result.OK] * 5
    last = get_transfer(db, "h4")
    assert last is not None
    assert last.expires_at is not None
    moment = last.expires_at
    assert db.transact(lambda uow: ledger.expire_pending(uow, now=moment, limit=2)) == 2
    expired = {
        t for t in ("h0", "h1", "h2", "h3", "h4") if get_transfer(db, ledger.expiry_void_id(t))
    }
    assert expired == {"h0", "h1"}
    assert db.transact(lambda uow: ledger.expire_pending(uow, now=moment)) == 3
    assert view(db, alice).debits_pending == 0
    assert_ledger_clean(db)


# --- linked chains ------------------------------------------------------------------------


def test_linked_chain_is_all_or_nothing(db: Database) -> None:
    bank, alice, shop, fees, campaign = open_accounts(
        db,
        platform(),
        customer(),
        customer(),
        platform(AccountCode.FEE_REVENUE),
        platform(AccountCode.CAMPAIGN_FUNDS),
    )
    post(
        db,
        TransferSpec("top", bank, alice, 1_000, CNY, TOPUP),
        TransferSpec("fund", bank, campaign, 500, CNY, TransferCode.CAMPAIGN_FUND),
        TransferSpec("held", alice, shop, 100, CNY, P2P, flags=PENDING, timeout=600),
    )
    before = state(db)

    # payment + fee (fails: the shop has nothing to pay a fee with) + subsidy.
    chain = [
        TransferSpec("pay", alice, shop, 800, CNY, TransferCode.PAYMENT, flags=LINKED),
        TransferSpec("fee", shop, fees, 900, CNY, TransferCode.FEE, flags=LINKED),
        TransferSpec("subsidy", campaign, alice, 50, CNY, TransferCode.CAMPAIGN_GRANT),
    ]
    assert post(db, *chain) == [
        Result.LINKED_EVENT_FAILED,
        Result.EXCEEDS_CREDITS,
        Result.LINKED_EVENT_FAILED,
    ]
    assert state(db) == before
    assert [get_transfer(db, s.id) for s in chain] == [None, None, None]

    # A chain that reserves, resolves an existing hold and then fails leaves no trace, even
    # for the rest of the same batch: the hold can still be posted, the id is still free.
    assert post(
        db,
        TransferSpec("h2", alice, shop, 100, CNY, P2P, flags=PENDING | LINKED, timeout=60),
        TransferSpec("h2-post", pending_id="h2", flags=POST | LINKED),
        TransferSpec("held-void", pending_id="held", flags=VOID | LINKED),
        TransferSpec("broken", alice, shop, 1, CNY, 0),
        TransferSpec("alone", alice, shop, 10, CNY, P2P),
        TransferSpec("held-post", pending_id="held", flags=POST),
        TransferSpec("h2", alice, shop, 100, CNY, P2P, flags=PENDING, timeout=60),
    ) == [
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_FAILED,
        Result.CODE_MUST_NOT_BE_ZERO,
        Result.OK,
        Result.OK,
        Result.OK,
    ]
    assert get_transfer(db, "h2-post") is None
    assert get_transfer(db, "held-void") is None
    h2 = get_transfer(db, "h2")
    assert h2 is not None
    assert (h2.flags, h2.amount) == (PENDING, 100)
    a, s = view(db, alice), view(db, shop)
    assert (a.balance, a.debits_pending, s.balance, s.credits_pending) == (890, 100, 110, 100)
    with db.uow(readonly=True) as uow:
        open_timeouts = uow.session.execute(
            text("SELECT transfer_id FROM ledger_pending_timeouts")
        ).all()
    assert [r[0] for r in open_timeouts] == ["h2"]
    assert post(db, TransferSpec("h2-void", pending_id="h2", flags=VOID)) == [Result.OK]

    # The same chain with an affordable fee: every leg lands, in one go.
    chain[1] = TransferSpec("fee", shop, fees, 8, CNY, TransferCode.FEE, flags=LINKED)
    assert post(db, *chain) == [Result.OK] * 3
    a, s, f = view(db, alice), view(db, shop), view(db, fees)
    assert (a.balance, s.balance, f.balance) == (890 - 800 + 50, 110 + 800 - 8, 8)
    assert_ledger_clean(db)


# --- idempotency --------------------------------------------------------------------------


def test_idempotent_posting_across_transactions(db: Database) -> None:
    bank, alice, bob = open_accounts(db, platform(), customer(), customer())
    batch = [
        TransferSpec("top", bank, alice, 5_000, CNY, TOPUP, reference="ord_top"),
        TransferSpec("p2p", alice, bob, 1_200, CNY, P2P, reference="ord_p2p"),
        TransferSpec("hold", alice, bob, 700, CNY, P2P, flags=PENDING, timeout=600),
        TransferSpec("hold-post", pending_id="hold", flags=POST, amount=None),
    ]
    assert post(db, *batch) == [Result.OK] * 4
    first = state(db)
    recorded = get_transfer(db, "p2p")

    # The client retries the whole batch (say its response was lost): nothing changes.
    assert post(db, *batch) == [Result.EXISTS] * 4
    assert state(db) == first
    assert get_transfer(db, "p2p") == recorded  # same timestamp: not re-recorded
    # A post may also be retried spelling out what it inherited.
    spelled = TransferSpec("hold-post", alice, bob, 700, CNY, P2P, flags=POST, pending_id="hold")
    assert post(db, spelled) == [Result.EXISTS]

    # The same id with anything else is an error, and changes nothing either.
    others = [
        TransferSpec("p2p", alice, bob, 1_201, CNY, P2P, reference="ord_p2p"),
        TransferSpec("p2p", bob, alice, 1_200, CNY, P2P, reference="ord_p2p"),
        TransferSpec("p2p", alice, bob, 1_200, CNY, TransferCode.PAYMENT, reference="ord_p2p"),
        TransferSpec("p2p", alice, bob, 1_200, CNY, P2P, reference="ord_other"),
        TransferSpec("p2p", alice, bob, 1_200, CNY, P2P, flags=PENDING, reference="ord_p2p"),
        TransferSpec("hold", alice, bob, 700, CNY, P2P, flags=PENDING, timeout=601),
        TransferSpec("hold-post", pending_id="hold", flags=POST, amount=600),
        TransferSpec("hold-post", pending_id="hold", flags=VOID),
    ]
    for spec in others:
        assert post(db, spec) == [Result.EXISTS_WITH_DIFFERENT_FIELDS], spec
    assert state(db) == first

    # A rejected id is not taken: once affordable, the same request goes through.
    late = TransferSpec("late", bob, alice, 5_000, CNY, P2P)
    assert post(db, late) == [Result.EXCEEDS_CREDITS]
    post(db, TransferSpec("top-bob", bank, bob, 5_000, CNY, TOPUP))
    assert post(db, late) == [Result.OK]
    assert post(db, late) == [Result.EXISTS]
    assert (view(db, alice).balance, view(db, bob).balance) == (8_100, 1_900)
    assert_ledger_clean(db)


# --- scale of a batch ---------------------------------------------------------------------


def test_a_batch_of_1000_transfers(db: Database) -> None:
    rng = random.Random(20_260_101)
    bank, *people = open_accounts(db, platform(), *[customer() for _ in range(40)])
    specs = [TransferSpec(f"top-{p}", bank, p, 1_000, CNY, TOPUP) for p in people]
    while len(specs) < 1_000:
        payer, payee = rng.sample(people, 2)
        specs.append(TransferSpec(f"p2p-{len(specs)}", payer, payee, rng.randint(1, 400), CNY, P2P))
    # A plain model of the batch: applied in order, no overdraft for customers.
    balance = dict.fromkeys([bank, *people], 0)
    expected: list[Result] = []
    for s in specs:
        assert s.amount is not None
        if s.debit_account_id != bank and balance[s.debit_account_id] < s.amount:
            expected.append(Result.EXCEEDS_CREDITS)
            continue
        balance[s.debit_account_id] -= s.amount
        balance[s.credit_account_id] += s.amount
        expected.append(Result.OK)
    assert 0 < expected.count(Result.EXCEEDS_CREDITS) < 200  # the model exercises both

    results = post(db, *specs)
    assert results == expected
    accounts = views(db, bank, *people)
    assert {i: v.balance for i, v in accounts.items()} == balance
    assert transfer_count(db) == expected.count(Result.OK)

    # Replaying the accepted ones is a no-op in one batch too.
    before = state(db)
    accepted = [s for s, r in zip(specs, results, strict=True) if r is Result.OK]
    assert post(db, *accepted) == [Result.EXISTS] * len(accepted)
    assert state(db) == before
    assert_ledger_clean(db)


# --- reading ------------------------------------------------------------------------------


def test_account_transfers_pages_newest_first(db: Database) -> None:
    bank, alice, bob, carol = open_accounts(db, platform(), customer(), customer(), customer())
    mine: list[str] = []
    for i in range(7):
        if i % 3 == 0:
            spec = TransferSpec(f"a{i}", bank, alice, 100, CNY, TOPUP)
        elif i % 3 == 1:
            spec = TransferSpec(f"a{i}", alice, bob, 10, CNY, P2P)
        else:
            spec = TransferSpec(f"a{i}", carol, alice, 1, CNY, P2P)
            post(db, TransferSpec(f"c{i}", bank, carol, 5, CNY, TOPUP))  # not alice's
        assert post(db, spec) == [Result.OK]
        mine.append(spec.id)

    def page(before: int | None) -> list[tuple[int, Transfer]]:
        with db.uow(readonly=True) as uow:
            return ledger.account_transfers(uow, account_id=alice, before_seq=before, limit=3)

    pages = [page(None)]
    while pages[-1] and len(pages) < 10:
        pages.append(page(pages[-1][-1][0]))
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    rows = [row for p in pages for row in p]
    seqs = [seq for seq, _ in rows]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == len(seqs)
    assert [t.id for _, t in rows] == list(reversed(mine))
    assert all(alice in (t.debit_account_id, t.credit_account_id) for _, t in rows)
    # An explicit bound in the middle starts right below it.
    middle = rows[2][0]
    assert [t.id for _, t in page(middle)] == [t.id for _, t in rows[3:6]]
    with db.uow(readonly=True) as uow:
        assert ledger.account_transfers(uow, account_id=carol, limit=100)[0][1].id == "a5"
    assert_ledger_clean(db)


# --- the database's own defences ----------------------------------------------------------


def test_check_constraints_are_a_second_line_of_defence(db: Database) -> None:
    bank, alice, fund = open_accounts(
        db, platform(), customer(), AccountSpec(CNY, AccountCode.CAMPAIGN_FUNDS, STAY_DRAWN)
    )
    post(
        db,
        TransferSpec("top", bank, alice, 1_000, CNY, TOPUP),
        TransferSpec("grant", fund, alice, 300, CNY, TransferCode.CAMPAIGN_GRANT),
        TransferSpec("hold", alice, bank, 200, CNY, P2P, flags=PENDING),
    )
    attacks = [
        # overdraw a no-overdraft account through its posted debits ...
        ("UPDATE ledger_accounts SET debits_posted = credits_posted + 1 WHERE id = :id", alice),
        # ... or through a hold larger than what is left
        (
            "UPDATE ledger_accounts SET debits_pending = credits_posted - debits_posted + 1 "
            "WHERE id = :id",
            alice,
        ),
        # a fund that must stay drawn down credited beyond its debits
        ("UPDATE ledger_accounts SET credits_posted = debits_posted + 1 WHERE id = :id", fund),
        # negative counters, even on an account without flags
        ("UPDATE ledger_accounts SET debits_posted = -1 WHERE id = :id", bank),
        ("UPDATE ledger_accounts SET credits_pending = -5 WHERE id = :id", bank),
        # a negative transfer, a transfer to itself
        ("UPDATE ledger_transfers SET amount = -1 WHERE credit_account_id = :id", alice),
        (
            "UPDATE ledger_transfers SET credit_account_id = debit_account_id "
            "WHERE debit_account_id = :id",
            bank,
        ),
        # a second resolution of one pending transfer (the unique index on pending_id)
        (
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, "
            "ledger, code, flags, pending_id, timeout, reference, timestamp, hash) "
            "SELECT 'hold-post-2', debit_account_id, credit_account_id, 10, ledger, code, 4, "
            "pending_id, 0, NULL, timestamp, hash FROM ledger_transfers WHERE id = 'hold-post' "
            "AND debit_account_id = :id",
            alice,
        ),
    ]
    # The last attack needs one resolution in place first.
    assert post(db, TransferSpec("hold-post", pending_id="hold", flags=POST, amount=50)) == [
        Result.OK
    ]
    before = state(db)

    def run(sql: str, account_id: int) -> None:
        def attack(uow: UnitOfWork) -> None:
            uow.session.execute(text(sql), {"id": account_id})

        db.transact(attack)

    for sql, account_id in attacks:
        with pytest.raises(IntegrityError):
            run(sql, account_id)
        assert state(db) == before, sql
    # The engine itself never leans on them: it refuses first.
    assert view(db, alice).available == 1_250
    assert post(db, TransferSpec("over", alice, bank, 1_251, CNY, P2P)) == [Result.EXCEEDS_CREDITS]
    assert post(db, TransferSpec("back", alice, fund, 301, CNY, P2P)) == [Result.EXCEEDS_DEBITS]
    assert_ledger_clean(db)
