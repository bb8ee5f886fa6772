"""Campaign use cases: create, fund, open, register, close, draw, issue, reclaim.

Lifecycle: ``draft`` → ``open`` (registration) → ``closed`` (the list hash is published)
→ ``drawn`` (the seed is revealed, winners ranked) → ``issued`` (every winner holds a
restricted balance) → ``ended`` (what was left went back to the campaign account).
Funding from the funder's bank is separate and must be done before the draw.

The campaign's ledger account (``CAMPAIGN_FUNDS``, no overdraft) is the "funder account":
the budget arrives in it from the bank, grants leave it, reclaims and late refunds come
back to it. Winners' balances are the wallet's restricted balances with the campaign as
their source (:mod:`citywallet.wallet.restricted`), so where and until when they may be
spent is enforced by the wallet and the merchant payment path, not here.

Registration takes a ``FOR KEY SHARE`` lock on the campaign row for its transaction, and
closing takes ``FOR UPDATE``: closing waits for registrations in flight, and none can
slip in after the list hash is computed. Nothing else is written to the campaign row
while registrations pour in: the running count is a striped counter beside it
(``campaign_registration_counts``, one random stripe of 16 per registration, in the
registration's transaction), so a 1.9-million burst does not queue on one row.

The draw writes the winners (``campaign_winners``) and every registration's position
(``campaign_draw_positions``) with ``COPY``, leaving the registrations as they were written;
issuance and reclaim work on batches with set-based statements over column arrays, the
grants through the ledger's bulk path for fresh accounts (``ledger.open_funded_accounts``),
the reclaims through ``ledger.post`` like any batch (docs/campaigns.md).
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Table, exists, func, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from citywallet.campaign import lottery
from citywallet.campaign.errors import (
    CampaignNotFound,
    CampaignStateError,
    NotEligible,
    RegistrationClosed,
)
from citywallet.campaign.models import (
    Campaign,
    DrawPosition,
    Registration,
    RegistrationCount,
    Winner,
)
from citywallet.campaign.rules import (
    Applicant,
    Eligibility,
    prize_list,
    refusal,
    validate_plan,
    validate_windows,
)
from citywallet.identity.attributes import resident_facts_of, resident_select
from citywallet.inbox import service as inbox
from citywallet.inbox.kinds import CAMPAIGN_DRAWN, CAMPAIGN_WON
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, TransferCode, TransferSpec
from citywallet.merchant.rules import validate_mcc
from citywallet.platform import outbox
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, DriverSql, UnitOfWork, copy_in
from citywallet.platform.errors import InvalidInput
from citywallet.wallet import accounts, restricted, restricted_figures
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.bank import Bank, BankAnswer, BankStatus
from citywallet.wallet.closure import closed_among
from citywallet.wallet.people import new_id
from citywallet.wallet.rules import luhn_valid, normalize_card_number

log = structlog.get_logger(__name__)
WON_TOPIC = "campaign.won"
NAME_MAX = 100
CHUNK = 900
COUNTER_STRIPES = 16  # rows a campaign's registration counter is spread over


@dataclass(frozen=True)
class CampaignSpec:
    """What an operator gives to create a campaign (amounts in fen, times in µs)."""

    name: str
    funder_name: str
    funder_bank_account: str
    budget: int
    prizes: Sequence[tuple[int, int]]  # (denomination, count)
    registration_opens_at: int
    registration_closes_at: int
    draw_at: int
    valid_from: int
    valid_until: int
    eligibility: Eligibility = field(default_factory=Eligibility)
    merchant_ids: Sequence[str] = ()
    districts: Sequence[str] = ()
    mccs: Sequence[str] = ()
    min_spend: int = 0
    description: str = ""


@dataclass(frozen=True)
class CampaignView:
    """A campaign as anyone may see it (the seed only once revealed)."""

    id: str
    name: str
    description: str
    status: str
    funder_name: str
    funding_status: str
    budget: int
    prizes: list[tuple[int, int]]
    eligibility: dict[str, Any]
    registration_opens_at: int
    registration_closes_at: int
    draw_at: int
    valid_from: int
    valid_until: int
    merchant_ids: list[str]
    districts: list[str]
    mccs: list[str]
    min_spend: int
    seed_commitment: str
    seed: str | None
    list_hash: str | None
    registrations: int
    winners: int
    issued: int
    created_at: int


@dataclass(frozen=True)
class RegistrationView:
    """A resident's entry and, after the draw, its outcome and how to check it."""

    id: str
    campaign_id: str
    status: str  # registered | won | lost
    rank: int | None
    prize: int | None
    ticket: str | None  # HMAC-SHA256(seed, id), once the seed is revealed
    issued: bool
    created_at: int


@dataclass(frozen=True)
class BatchRegistration:
    """What a batch of registrations did."""

    accepted: int
    duplicates: int
    refused: dict[str, int]


# --- reading ------------------------------------------------------------------------------


def campaign_row(uow: UnitOfWork, campaign_id: str, *, lock: str | None = None) -> Campaign:
    """The campaign (``campaign_not_found``); ``lock`` is ``"update"`` or ``"key_share"``."""
    query = select(Campaign).where(Campaign.public_id == campaign_id)
    if lock == "update":
        query = query.with_for_update().execution_options(populate_existing=True)
    elif lock == "key_share":
        query = query.with_for_update(read=True, key_share=True).execution_options(
            populate_existing=True
        )
    row = uow.session.scalar(query)
    if row is None:
        raise CampaignNotFound("No such campaign.")
    return row


def campaign_view(uow: UnitOfWork, row: Campaign) -> CampaignView:
    """The public view of a campaign row."""
    source = restricted.source_by_ref(uow, row.public_id)
    assert source is not None
    scope = restricted.scope_of(source)
    registrations = row.registrations
    if row.status in ("draft", "open"):  # not frozen yet: the counter
        registrations = count_registrations(uow, row.id)
    return CampaignView(
        id=row.public_id,
        name=row.name,
        description=row.description,
        status=row.status,
        funder_name=row.funder_name,
        funding_status=row.funding_status,
        budget=row.budget,
        prizes=[(int(a), int(c)) for a, c in json.loads(row.prizes)],
        eligibility=json.loads(row.eligibility),
        registration_opens_at=row.registration_opens_at,
        registration_closes_at=row.registration_closes_at,
        draw_at=row.draw_at,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        merchant_ids=sorted(scope.merchant_ids),
        districts=sorted(scope.districts),
        mccs=sorted(scope.mccs),
        min_spend=source.min_spend,
        seed_commitment=row.seed_commitment,
        seed=row.seed_hex,
        list_hash=row.list_hash,
        registrations=registrations,
        winners=row.winners,
        issued=row.issued,
        created_at=row.created_at,
    )


def count_registrations(uow: UnitOfWork, campaign_pk: int) -> int:
    """How many people have registered: the sum of the counter's stripes (a few rows, not
    a count over the registrations)."""
    return int(
        uow.session.scalar(
            select(func.coalesce(func.sum(RegistrationCount.registrations), 0)).where(
                RegistrationCount.campaign_id == campaign_pk
            )
        )
        or 0
    )


def _count_registered(uow: UnitOfWork, campaign_pk: int, added: int) -> None:
    """Add ``added`` to one random stripe of the campaign's counter (an upsert, in the
    registration's transaction: the count is exactly the committed registrations)."""
    if added <= 0:
        return
    uow.session.connection().execute(
        text(
            "INSERT INTO campaign_registration_counts (campaign_id, stripe, registrations) "
            "VALUES (:campaign, :stripe, :added) ON CONFLICT (campaign_id, stripe) "
            "DO UPDATE SET registrations = campaign_registration_counts.registrations + :added"
        ),
        {"campaign": campaign_pk, "stripe": secrets.randbelow(COUNTER_STRIPES), "added": added},
    )


def get_campaign(uow: UnitOfWork, *, campaign_id: str, include_draft: bool = False) -> CampaignView:
    """A campaign; drafts only for operators (``include_draft``)."""
    row = campaign_row(uow, campaign_id)
    if row.status == "draft" and not include_draft:
        raise CampaignNotFound("No such campaign.")
    return campaign_view(uow, row)


def list_campaigns(uow: UnitOfWork, *, include_draft: bool = False) -> list[CampaignView]:
    """Campaigns, newest first (drafts only for operators)."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(200)
    if not include_draft:
        query = query.where(Campaign.status != "draft")
    return [campaign_view(uow, row) for row in uow.session.scalars(query)]


# --- creating and funding -----------------------------------------------------------------


def _clean(value: str, field: str, limit: int) -> str:
    clean = " ".join(value.split())
    if not clean or len(clean) > limit:
        raise InvalidInput(f"The {field} has 1 to {limit} characters.", code=f"invalid_{field}")
    return clean


def create_campaign(
    uow: UnitOfWork, *, spec: CampaignSpec, actor: str, encryptor: Encryptor
) -> CampaignView:
    """Create a campaign in ``draft``, after checking the plan (Σ denomination × count =
    budget), the windows' order and the scope; commits to a fresh secret seed now."""
    name = _clean(spec.name, "name", NAME_MAX)
    funder = _clean(spec.funder_name, "funder_name", NAME_MAX)
    plan = validate_plan(spec.budget, spec.prizes)
    validate_windows(
        registration_opens_at=spec.registration_opens_at,
        registration_closes_at=spec.registration_closes_at,
        draw_at=spec.draw_at,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
    )
    account_number = normalize_card_number(spec.funder_bank_account)
    if not luhn_valid(account_number):
        raise InvalidInput("That is not a valid bank account number.", code="invalid_bank_account")
    for mcc in spec.mccs:
        validate_mcc(mcc)
    if spec.min_spend < 0:
        raise InvalidInput("A minimum spend is zero or more.", code="invalid_min_spend")
    if spec.eligibility.min_tier not in (1, 2, 3):
        raise InvalidInput("The minimum tier is 1, 2 or 3.", code="invalid_eligibility")
    public_id = new_id("cmp")
    account = ledger.create_account(
        uow,
        ledger=CURRENCY,
        code=AccountCode.CAMPAIGN_FUNDS,
        flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        owner_ref=f"{public_id}:funds",
    )
    seed = lottery.new_seed()
    aad = public_id.encode()
    moment = now_us()
    row = Campaign(
        public_id=public_id,
        name=name,
        description=" ".join(spec.description.split())[:500],
        status="draft",
        funder_name=funder,
        funder_bank_account_enc=encryptor.encrypt(account_number.encode(), aad=aad),
        funder_bank_account_last4=account_number[-4:],
        funding_status="unfunded",
        funding_attempts=0,
        account_id=account,
        budget=spec.budget,
        prizes=json.dumps(plan),
        eligibility=json.dumps(spec.eligibility.as_json(), ensure_ascii=False),
        registration_opens_at=spec.registration_opens_at,
        registration_closes_at=spec.registration_closes_at,
        draw_at=spec.draw_at,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        seed_commitment=lottery.commitment(seed),
        seed_enc=encryptor.encrypt(seed, aad=aad),
        registrations=0,
        winners=0,
        issued=0,
        created_by=actor,
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(row)
    restricted.create_source(
        uow,
        spec=restricted.SourceSpec(
            public_id=public_id,
            name=name,
            funder_account_id=account,
            valid_from=spec.valid_from,
            valid_until=spec.valid_until,
            merchant_ids=spec.merchant_ids,
            districts=spec.districts,
            mccs=spec.mccs,
            min_spend=spec.min_spend,
        ),
    )
    uow.session.flush()
    log.info("campaign created", campaign_id=public_id, actor=actor, budget=spec.budget)
    return campaign_view(uow, row)


def _funding_reference(row: Campaign) -> str:
    return f"{row.public_id}.fund{row.funding_attempts}"


def fund_campaign(
    db: Database,
    *,
    campaign_id: str,
    bank: Bank,
    encryptor: Encryptor,
    on_start: Callable[[UnitOfWork], None] | None = None,
) -> str:
    """Collect the budget from the funder's bank account into the campaign account; returns
    the funding status (``funded``, ``pending`` if the bank has not answered, or
    ``unfunded`` with the bank's reason kept). Safe to call again: a pending attempt is
    queried by its reference before any new one is made. ``on_start`` runs in the first
    transaction, once the campaign is found (the console writes its audit entry there)."""

    def start(uow: UnitOfWork) -> tuple[str, str, bool]:
        row = campaign_row(uow, campaign_id, lock="update")
        if on_start is not None:
            on_start(uow)
        if row.funding_status == "funded":
            return "", "", False
        if row.status == "ended":
            raise CampaignStateError("This campaign has ended.")
        asking = row.funding_status == "pending"
        if not asking:
            row.funding_attempts += 1
            row.funding_status, row.updated_at = "pending", now_us()
        number = encryptor.decrypt(row.funder_bank_account_enc, aad=row.public_id.encode())
        return _funding_reference(row), number.decode(), asking

    reference, number, asking = db.transact(start)
    if not reference:
        return "funded"
    with db.uow(readonly=True) as uow:
        budget = campaign_row(uow, campaign_id).budget
    try:
        if asking:
            answer = bank.query(reference=reference)
        else:
            answer = bank.debit_card(
                reference=reference, card_number=number, amount=budget, currency=CURRENCY
            )
    except Exception as exc:  # the outcome is the bank's to tell: ask again next time
        log.warning("campaign funding call failed", campaign_id=campaign_id, error=repr(exc))
        answer = BankAnswer(BankStatus.UNKNOWN, "error")
    return db.transact(lambda uow: _settle_funding(uow, campaign_id, reference, answer))


def _settle_funding(uow: UnitOfWork, campaign_id: str, reference: str, answer: BankAnswer) -> str:
    row = campaign_row(uow, campaign_id, lock="update")
    if row.funding_status != "pending" or _funding_reference(row) != reference:
        return row.funding_status
    moment = now_us()
    if answer.status is BankStatus.SUCCEEDED:
        [result] = ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=reference,
                    debit_account_id=accounts.bank_settlement_account(uow),
                    credit_account_id=row.account_id,
                    amount=row.budget,
                    ledger=CURRENCY,
                    code=TransferCode.CAMPAIGN_FUND,
                    reference=row.public_id,
                )
            ],
        )
        if not result.on_books:
            raise RuntimeError(f"ledger refused funding {reference}: {result.value}")
        row.funding_status, row.funded_at, row.funding_code = "funded", moment, None
    elif answer.status is BankStatus.FAILED or answer.status is BankStatus.NOT_FOUND:
        row.funding_status, row.funding_code = "unfunded", answer.code or "not_found"
    row.updated_at = moment
    uow.session.flush()
    return row.funding_status


# --- registration -------------------------------------------------------------------------


def _transition(row: Campaign, expected: str, to: str) -> None:
    if row.status != expected:
        raise CampaignStateError(
            f"The campaign is {row.status}; this step needs it {expected}.",
            status_now=row.status,
        )
    row.status, row.updated_at = to, now_us()


def open_registration(uow: UnitOfWork, *, campaign_id: str, actor: str) -> CampaignView:
    """Open registration (people may register from ``registration_opens_at`` on)."""
    row = campaign_row(uow, campaign_id, lock="update")
    _transition(row, "draft", "open")
    row.opened_at = row.updated_at
    uow.session.flush()
    log.info("campaign opened", campaign_id=campaign_id, actor=actor)
    return campaign_view(uow, row)


def close_registration(
    uow: UnitOfWork, *, campaign_id: str, actor: str, now: int | None = None
) -> CampaignView:
    """Close registration once its window has ended and publish the list hash (it waits
    for registrations in flight)."""
    row = campaign_row(uow, campaign_id, lock="update")
    moment = now if now is not None else now_us()
    if row.status == "open" and moment < row.registration_closes_at:
        raise CampaignStateError(
            "Registration is open until its window ends.", code="registration_window_open"
        )
    _transition(row, "open", "closed")
    ids = registration_ids(uow, row.id)
    row.list_hash, row.registrations, row.closed_at = lottery.list_hash(ids), len(ids), moment
    uow.session.flush()
    log.info("campaign closed", campaign_id=campaign_id, actor=actor, registrations=len(ids))
    return campaign_view(uow, row)


def registration_ids(uow: UnitOfWork, campaign_pk: int) -> list[str]:
    """Every registration id of a campaign (what the list hash and the draw cover)."""
    return _stream_registrations(uow, campaign_pk)[1]


def _window_open(row: Campaign, moment: int) -> None:
    if row.status != "open" or not (
        row.registration_opens_at <= moment < row.registration_closes_at
    ):
        raise RegistrationClosed("Registration for this campaign is not open.")


def _campaign_and_applicant(
    uow: UnitOfWork, campaign_id: str, user_id: str
) -> tuple[Campaign, Applicant, int | None]:
    """The campaign row under ``FOR KEY SHARE`` (as :func:`campaign_row`), what eligibility
    looks at for the resident, and the pk of the same person's registration in this
    campaign if there is one: one statement (identity's :func:`resident_select` joined to
    the campaign row, the duplicate check as a column). The lock is taken by the same
    statement that reads the status: closing (``FOR UPDATE``) waits for it, or it waits for
    closing and then reads ``closed`` (PostgreSQL re-reads a locked row once it is free)."""
    resident = resident_select(user_id).subquery()
    registered = (
        select(Registration.id)
        .where(Registration.campaign_id == Campaign.id, Registration.id_hash == resident.c.id_hash)
        .scalar_subquery()
    )
    query = (
        select(Campaign, resident, registered.label("registered"))
        .outerjoin(resident, true())
        .where(Campaign.public_id == campaign_id)
        .with_for_update(read=True, key_share=True, of=Campaign)
        .execution_options(populate_existing=True)
    )
    rows = uow.session.execute(query).all()
    if not rows:
        raise CampaignNotFound("No such campaign.")
    facts = resident_facts_of(rows)
    who = Applicant(user_id, facts.id_hash, facts.tier, facts.status, facts.attributes)
    return rows[0].Campaign, who, rows[0].registered


def register(
    uow: UnitOfWork,
    *,
    campaign_id: str,
    user_id: str,
    now: int | None = None,
    hide_draft: bool = False,
) -> tuple[RegistrationView, bool]:
    """Register the resident (once per person, by resident ID number); returns the
    registration and whether it is new. Registering again returns the same one. A draft is
    ``registration_closed``, or ``campaign_not_found`` with ``hide_draft`` (the API, where
    residents do not see drafts)."""
    row, who, registered = _campaign_and_applicant(uow, campaign_id, user_id)
    if hide_draft and row.status == "draft":
        raise CampaignNotFound("No such campaign.")
    moment = now if now is not None else now_us()
    if registered is not None:
        existing = uow.session.get_one(Registration, registered)
        return registration_view(row, existing, _winner_of(uow, row, existing.id)), False
    _window_open(row, moment)
    reason = refusal(Eligibility.of(json.loads(row.eligibility)), who)
    if reason is not None:
        raise NotEligible(_REFUSALS.get(reason, "You are not eligible."), code=reason)
    assert who.id_hash is not None
    entry = Registration(
        public_id=new_id("reg"),
        campaign_id=row.id,
        user_id=user_id,
        id_hash=who.id_hash,
        district=who.attributes.get("district", "")[:40],
        created_at=moment,
    )
    if uow.dialect == "postgresql":  # the registration and its counter stripe: one statement
        counted = _REGISTER_AND_COUNT.run(
            uow,
            (
                entry.public_id, entry.campaign_id, entry.user_id, entry.id_hash,
                entry.district, entry.created_at, secrets.randbelow(COUNTER_STRIPES),
            ),
        ).first()  # fmt: skip
        if counted is None:  # the same person registered in a transaction that just committed
            existing = uow.session.scalars(
                select(Registration).where(
                    Registration.campaign_id == row.id, Registration.id_hash == who.id_hash
                )
            ).one()
            return registration_view(row, existing, None), False
    else:
        uow.session.add(entry)
        uow.session.flush()
        _count_registered(uow, row.id, 1)
    return registration_view(row, entry, None), True


# What :func:`_count_registered` does for one registration, in the statement that inserts it
# (a data-modifying CTE: PostgreSQL only). A registration of the same person that committed
# after this one's duplicate check (a double tap) makes the insert do nothing, and so the count:
# no row comes back, and ``register`` answers with that registration.
_REGISTER_AND_COUNT = DriverSql(
    "WITH entry AS (INSERT INTO campaign_registrations "
    "(public_id, campaign_id, user_id, id_hash, district, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, id_hash) DO NOTHING "
    "RETURNING campaign_id) "
    "INSERT INTO campaign_registration_counts (campaign_id, stripe, registrations) "
    "SELECT campaign_id, ?, 1 FROM entry ON CONFLICT (campaign_id, stripe) "
    "DO UPDATE SET registrations = campaign_registration_counts.registrations + 1 "
    "RETURNING registrations"
)


_REFUSALS = {
    "account_not_active": "This account cannot take part right now.",
    "real_name_required": "Verify your real name to register.",
    "tier_too_low": "Your wallet's verification level is too low for this campaign.",
    "district_not_eligible": "This campaign is for residents of other districts.",
    "attribute_not_eligible": "You do not meet this campaign's conditions.",
}


def register_many(
    uow: UnitOfWork, *, campaign_id: str, applicants: Sequence[Applicant], now: int | None = None
) -> BatchRegistration:
    """Register a batch of applicants in one statement (the bulk path: an import from a
    registration front end, the benchmark). Same rules as :func:`register`; a person
    already registered counts as a duplicate."""
    row = campaign_row(uow, campaign_id, lock="key_share")
    moment = now if now is not None else now_us()
    _window_open(row, moment)
    rule = Eligibility.of(json.loads(row.eligibility))
    refused: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for who in applicants:
        reason = refusal(rule, who)
        if reason is not None:
            refused[reason] += 1
            continue
        assert who.id_hash is not None
        if who.id_hash in seen:
            continue
        seen.add(who.id_hash)
        rows.append(
            {
                "public_id": new_id("reg"),
                "campaign_id": row.id,
                "user_id": who.user_id,
                "id_hash": who.id_hash,
                "district": who.attributes.get("district", "")[:40],
                "created_at": moment,
            }
        )
    accepted = _insert_new(uow, rows)
    _count_registered(uow, row.id, accepted)
    return BatchRegistration(
        accepted, len(applicants) - sum(refused.values()) - accepted, dict(refused)
    )


def _insert_new(uow: UnitOfWork, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose person is not registered yet (one multi-row statement per
    chunk, ``ON CONFLICT DO NOTHING``); returns how many went in."""
    if not rows:
        return 0
    if uow.dialect == "postgresql":
        # One short statement with a column array each: a multi-row VALUES of 10,000 rows is
        # a 70,000-parameter query string that psycopg re-parses client-side (uncached, it is
        # too long) in every 1,000-row page, which was most of the time of the bulk path.
        columns = ("public_id", "campaign_id", "user_id", "id_hash", "district")
        inserted = uow.session.connection().execute(
            text(
                "INSERT INTO campaign_registrations "
                "(public_id, campaign_id, user_id, id_hash, district, created_at) "
                "SELECT * FROM unnest(CAST(:public_id AS text[]), CAST(:campaign_id AS bigint[]), "
                "CAST(:user_id AS text[]), CAST(:id_hash AS text[]), CAST(:district AS text[]), "
                "CAST(:created_at AS bigint[])) "
                "ON CONFLICT (campaign_id, id_hash) DO NOTHING RETURNING id"
            ),
            {name: [r[name] for r in rows] for name in (*columns, "created_at")},
        )
        return len(inserted.all())
    table = Registration.__table__
    assert isinstance(table, Table)
    build = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = (
        build(table)
        .on_conflict_do_nothing(index_elements=["campaign_id", "id_hash"])
        .returning(table.c.id)
    )
    return len(uow.session.connection().execute(statement, rows).all())


def registration_view(row: Campaign, entry: Registration, won: Winner | None) -> RegistrationView:
    """A registration as its resident sees it (``won``: its winner row, if it won)."""
    seed = row.seed_hex
    status = "won" if won is not None else "registered" if seed is None else "lost"
    ticket = None if seed is None else lottery.ticket(bytes.fromhex(seed), entry.public_id).hex()
    return RegistrationView(
        id=entry.public_id,
        campaign_id=row.public_id,
        status=status,
        rank=None if won is None else won.rank,
        prize=None if won is None else won.prize,
        ticket=ticket,
        issued=won is not None and won.issued_at is not None,
        created_at=entry.created_at,
    )


def _winner_of(uow: UnitOfWork, row: Campaign, registration_pk: int) -> Winner | None:
    """The registration's winner row (none before the draw: no query then)."""
    if row.seed_hex is None:
        return None
    return uow.session.scalar(select(Winner).where(Winner.registration_id == registration_pk))


def my_registration(uow: UnitOfWork, *, campaign_id: str, user_id: str) -> RegistrationView:
    """The resident's registration in a campaign (``registration_not_found``)."""
    row = campaign_row(uow, campaign_id)
    entry = uow.session.scalar(
        select(Registration).where(
            Registration.campaign_id == row.id, Registration.user_id == user_id
        )
    )
    if entry is None:
        raise CampaignNotFound(
            "You have not registered for this campaign.", code="registration_not_found"
        )
    return registration_view(row, entry, _winner_of(uow, row, entry.id))


# --- the draw -----------------------------------------------------------------------------


def draw(
    uow: UnitOfWork, *, campaign_id: str, actor: str, encryptor: Encryptor, now: int | None = None
) -> CampaignView:
    """Reveal the seed and rank the registrations by HMAC-SHA256(seed, registration id):
    the first K win, prizes largest first. Needs the campaign closed and funded, at or
    after its draw time. The winners go to ``campaign_winners`` and every registration's
    position among all tickets to ``campaign_draw_positions`` (the residents' draw check);
    a second draw is refused (``campaign_state_invalid``)."""
    row = campaign_row(uow, campaign_id, lock="update")
    moment = now if now is not None else now_us()
    if row.status == "closed" and row.funding_status != "funded":
        raise CampaignStateError("Fund the campaign before the draw.", code="campaign_not_funded")
    if row.status == "closed" and moment < row.draw_at:
        raise CampaignStateError("It is not yet time for the draw.", code="draw_too_early")
    _transition(row, "closed", "drawn")
    seed = encryptor.decrypt(row.seed_enc, aad=row.public_id.encode())
    pks, ids = _stream_registrations(uow, row.id)
    if lottery.list_hash(ids) != row.list_hash:
        raise RuntimeError(f"registrations of {campaign_id} changed after closing")
    winners, positions = lottery.ranking(seed, ids, prize_list(json.loads(row.prizes)))
    count = len(winners)  # the winners hold positions 1..count, in rank order
    won = sorted((p, pk) for pk, p in zip(pks, positions, strict=True) if p <= count)
    _store_winners(uow, row.id, [(rank, pk, winners[rank - 1].prize) for rank, pk in won])
    _store_positions(uow, pks, positions)
    # the message centre: everyone not drawn hears of the draw now (one INSERT … SELECT);
    # the winners hear when their prize is issued (issue_batch)
    not_drawn = select(Registration.user_id).where(
        Registration.campaign_id == row.id,
        ~exists().where(Winner.campaign_id == row.id, Winner.registration_id == Registration.id),
    )
    inbox.record_many(
        uow,
        not_drawn,
        kind=CAMPAIGN_DRAWN,
        ref=row.public_id,
        params={"campaign": row.name},
        broadcast=True,
    )
    row.seed_hex, row.winners, row.drawn_at = seed.hex(), len(winners), moment
    uow.session.flush()
    log.info("campaign drawn", campaign_id=campaign_id, actor=actor, winners=len(winners))
    return campaign_view(uow, row)


def _stream_registrations(uow: UnitOfWork, campaign_pk: int) -> tuple[list[int], list[str]]:
    """Every registration's row id and public id. PostgreSQL streams them with ``COPY …
    TO STDOUT`` (no row objects: 2 million rows through a cursor were 20 s of Python row
    handling); SQLite reads them with a plain query."""
    if uow.dialect == "postgresql":
        driver = uow.session.connection().connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(
                "COPY (SELECT id, public_id FROM campaign_registrations "
                "WHERE campaign_id = %s) TO STDOUT",
                (campaign_pk,),
            ) as copy,
        ):
            data = b"".join(bytes(block) for block in copy)
        if b"\\" not in data:  # no escaped characters (ids are printable ASCII): split
            fields = data.decode().replace("\t", "\n").split("\n")[:-1]
            return [int(pk) for pk in fields[0::2]], fields[1::2]
    rows = uow.session.connection().execute(
        select(Registration.id, Registration.public_id).where(
            Registration.campaign_id == campaign_pk
        )
    )
    pks: list[int] = []
    ids: list[str] = []
    for pk, public_id in rows:
        pks.append(int(pk))
        ids.append(public_id)
    return pks, ids


def _store_winners(uow: UnitOfWork, campaign_pk: int, winners: list[tuple[int, int, int]]) -> None:
    """Write the winners (rank, registration row id, prize) to ``campaign_winners``: ``COPY``
    on PostgreSQL, an executemany on SQLite. The registrations themselves are not touched."""
    if not winners:
        return
    if uow.dialect == "postgresql":
        with copy_in(
            uow.session.connection(), "campaign_winners (campaign_id, rank, registration_id, prize)"
        ) as copy:
            copy.write("".join(f"{campaign_pk}\t{r}\t{pk}\t{p}\n" for r, pk, p in winners))
        return
    uow.session.connection().execute(
        text(
            "INSERT INTO campaign_winners (campaign_id, rank, registration_id, prize) "
            "VALUES (:c, :r, :pk, :p)"
        ),
        [{"c": campaign_pk, "r": r, "pk": pk, "p": p} for r, pk, p in winners],
    )


def _store_positions(uow: UnitOfWork, pks: list[int], positions: list[int]) -> None:
    """Store each registration's draw position: ``COPY`` on PostgreSQL (text rows written
    in blocks), an executemany on SQLite."""
    if not pks:
        return
    if uow.dialect == "postgresql":
        block = 100_000
        with copy_in(
            uow.session.connection(), "campaign_draw_positions (registration_id, position)"
        ) as copy:
            for first in range(0, len(pks), block):
                rows = zip(
                    pks[first : first + block], positions[first : first + block], strict=True
                )
                copy.write("".join(f"{pk}\t{position}\n" for pk, position in rows))
        return
    uow.session.connection().execute(
        text("INSERT INTO campaign_draw_positions (registration_id, position) VALUES (:r, :p)"),
        [{"r": pk, "p": position} for pk, position in zip(pks, positions, strict=True)],
    )


def draw_position(uow: UnitOfWork, *, registration_pk: int) -> int | None:
    """A registration's stored draw position (``None`` before the draw, or for a campaign
    drawn before positions were stored)."""
    found = uow.session.scalar(
        select(DrawPosition.position).where(DrawPosition.registration_id == registration_pk)
    )
    return None if found is None else int(found)


def draw_document(uow: UnitOfWork, *, campaign_id: str) -> dict[str, Any]:
    """The published draw file (format ``citywallet-campaign-draw/1``): seed, commitment,
    every registration id, the prizes and the stored winners; anyone can recompute it."""
    row = campaign_row(uow, campaign_id)
    if row.seed_hex is None:
        raise CampaignStateError("The draw has not happened yet.", code="not_drawn")
    seed = bytes.fromhex(row.seed_hex)
    winners = [
        lottery.Winner(
            rank,
            registration_id,
            lottery.ticket(seed, registration_id).hex(),
            prize,
        )
        for rank, registration_id, prize in uow.session.execute(
            select(Winner.rank, Registration.public_id, Winner.prize)
            .join(Registration, Registration.id == Winner.registration_id)
            .where(Winner.campaign_id == row.id)
            .order_by(Winner.rank)
        )
    ]
    return lottery.draw_file(
        row.public_id,
        bytes.fromhex(row.seed_hex),
        row.seed_commitment,
        registration_ids(uow, row.id),
        prize_list(json.loads(row.prizes)),
        winners,
    )


def published_draw(uow: UnitOfWork, *, campaign_id: str) -> bytes:
    """The draw file's canonical bytes: the one file the API, the pages and ``verify-draw
    --out`` all publish, so its SHA-256 is the same wherever it is fetched."""
    return lottery.dump_draw_file(draw_document(uow, campaign_id=campaign_id))


# --- issuance and reclaim -----------------------------------------------------------------


def issue_batch(uow: UnitOfWork, *, campaign_id: str, limit: int = 10_000) -> int:
    """Give up to ``limit`` more winners their restricted balance and queue their SMS;
    returns how many (0: all issued, and the campaign is now ``issued``). Repeatable."""
    row = campaign_row(uow, campaign_id, lock="update")
    if row.status not in ("drawn", "issued"):
        raise CampaignStateError(
            f"The campaign is {row.status}; issue after the draw.", status_now=row.status
        )
    pending = list(
        uow.session.execute(
            select(Winner.rank, Registration.public_id, Registration.user_id, Winner.prize)
            .join(Registration, Registration.id == Winner.registration_id)
            .where(Winner.campaign_id == row.id, Winner.issued_at.is_(None))
            .order_by(Winner.rank)
            .limit(limit)
        )
    )
    if not pending:
        if row.status == "drawn":
            _transition(row, "drawn", "issued")
            uow.session.flush()
        return 0
    source = restricted.source_by_ref(uow, row.public_id)
    assert source is not None
    # A winner who closed the wallet since registering forfeits the prize: it stays with
    # the campaign (and goes back to the funder with the rest); their row is done all the same.
    closed = closed_among(uow, user_ids=[user_id for _, _, user_id, _ in pending])
    winners = [w for w in pending if w[2] not in closed]
    restricted.grant(
        uow,
        source=source,
        grants=[
            restricted.Grant(user_id, int(prize or 0), f"{public_id}.grant")
            for _, public_id, user_id, prize in winners
        ],
    )
    moment = now_us()
    # The batch is a run of ranks: one range of the narrow table's primary key.
    uow.session.execute(
        update(Winner)
        .where(
            Winner.campaign_id == row.id,
            Winner.rank.between(pending[0][0], pending[-1][0]),
            Winner.issued_at.is_(None),
        )
        .values(issued_at=moment)
        .execution_options(synchronize_session=False)
    )
    if winners:
        inbox.record_each(
            uow,
            CAMPAIGN_WON,
            [
                (user_id, row.public_id, {"campaign": row.name, "amount": int(prize or 0)})
                for _, _, user_id, prize in winners
            ],
        )
        outbox.enqueue(
            uow,
            topic=WON_TOPIC,
            payload={
                "campaign_id": row.public_id,
                "winners": [[pid, user_id, prize] for _, pid, user_id, prize in winners],
            },
        )
    row.issued += len(winners)
    row.updated_at = moment
    uow.session.flush()
    return len(pending)


def reclaim_batch(
    uow: UnitOfWork, *, campaign_id: str, now: int | None = None, limit: int = 10_000
) -> int:
    """After the validity window, return up to ``limit`` more unused balances to the
    campaign account; returns how many (0: done, and the campaign is now ``ended``)."""
    row = campaign_row(uow, campaign_id, lock="update")
    moment = now if now is not None else now_us()
    if moment < row.valid_until:
        raise CampaignStateError(
            "The red packets are valid until their window ends.", code="still_valid"
        )
    if row.status not in ("issued", "ended"):
        raise CampaignStateError(
            f"The campaign is {row.status}; reclaim after issuing.", status_now=row.status
        )
    source = restricted.source_by_ref(uow, row.public_id)
    assert source is not None
    done = restricted.reclaim_source_bulk(uow, source=source, now=moment, limit=limit)
    if done == 0 and row.status == "issued":
        _transition(row, "issued", "ended")
        row.ended_at = moment
        uow.session.flush()
    return done


def reclaim_due(uow: UnitOfWork, *, now: int | None = None, limit: int = 10_000) -> int:
    """The periodic job: reclaim every expired restricted balance and end the campaigns
    whose balances are all back; returns how many balances it reclaimed."""
    moment = now if now is not None else now_us()
    done = restricted.reclaim_expired(uow, now=moment, limit=limit)
    finished = list(
        uow.session.scalars(
            select(Campaign.public_id).where(
                Campaign.status == "issued", Campaign.valid_until <= moment
            )
        )
    )
    for campaign_id in finished:
        row = campaign_row(uow, campaign_id, lock="update")
        source = restricted.source_by_ref(uow, row.public_id)
        assert source is not None
        if not restricted_figures.active_balances(uow, source_id=source.id):
            _transition(row, "issued", "ended")
            row.ended_at = moment
    uow.session.flush()
    return done


def campaign_balance(uow: UnitOfWork, *, campaign_id: str) -> int:
    """What the campaign account holds now (budget not granted, plus what came back)."""
    row = campaign_row(uow, campaign_id)
    view = ledger.get_account(uow, account_id=row.account_id)
    return 0 if view is None else view.balance
