"""Applying a batch of transfers to account states: the ledger's rules, pure and in memory.

The SQL engine loads (and locks) the accounts and pending transfers a batch names, calls
:func:`apply_batch`, and writes what it returns; the property tests run the same function
against a reference model. Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence

from citywallet.ledger.types import (
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    AccountFlags,
    AccountState,
    BatchOutcome,
    PendingState,
    PendingStatus,
    Result,
    Transfer,
    TransferFlags,
    TransferSpec,
)

# The flags as plain ints: ``int & IntFlag`` goes through the enum's Python-level operators
# (about a microsecond each, several per transfer); ``int & int`` stays in C.
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST_PENDING = int(TransferFlags.POST_PENDING)
_VOID_PENDING = int(TransferFlags.VOID_PENDING)
_EXPIRED = int(TransferFlags.EXPIRED)
_PHASE_FLAGS = _PENDING | _POST_PENDING | _VOID_PENDING
_RESOLVE_FLAGS = _POST_PENDING | _VOID_PENDING
_CLIENT_FLAGS = TransferFlags.client_settable()
_NO_OVERDRAFT = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_NO_OVERCREDIT = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


def apply_batch(
    specs: Sequence[TransferSpec],
    accounts: Mapping[int, AccountState],
    existing: Mapping[str, Transfer],
    pendings: MutableMapping[str, PendingState],
    *,
    now: int,
    system: bool = False,
) -> BatchOutcome:
    """Apply ``specs`` in order, mutating ``accounts`` and ``pendings`` in place.

    ``existing`` holds already-recorded transfers with the batch's ids; ``pendings`` holds the
    pending transfers the batch refers to (pending transfers the batch creates join it).
    ``system`` allows the ledger's own EXPIRED flag.
    Linked chains succeed or fail together; a failed chain leaves no trace.
    """
    outcome = BatchOutcome(results=[Result.OK] * len(specs))
    recorded: dict[str, Transfer] = dict(existing)
    index = 0
    while index < len(specs):
        end = index
        while end < len(specs) and specs[end].flags & _LINKED:
            end += 1
        chain_open = end == len(specs)
        end = min(end, len(specs) - 1)
        _apply_chain(
            specs, index, end, chain_open, accounts, recorded, pendings, outcome, now, system
        )
        index = end + 1
    return outcome


def _apply_chain(
    specs: Sequence[TransferSpec],
    first: int,
    last: int,
    chain_open: bool,
    accounts: Mapping[int, AccountState],
    recorded: dict[str, Transfer],
    pendings: MutableMapping[str, PendingState],
    outcome: BatchOutcome,
    now: int,
    system: bool,
) -> None:
    """Apply specs[first..last] as one all-or-nothing chain."""
    saved_accounts: dict[int, AccountState] = {}
    saved_pendings: dict[str, PendingStatus] = {}
    created_mark = len(outcome.created)
    new_ids: list[str] = []
    failed_at: int | None = None
    failure = Result.OK
    for i in range(first, last + 1):
        spec = specs[i]
        if chain_open and i == last:
            failed_at, failure = i, Result.LINKED_EVENT_CHAIN_OPEN
            break
        result, transfer = _apply_one(
            spec, accounts, recorded, pendings, now, system, saved_accounts, saved_pendings
        )
        outcome.results[i] = result
        if not result.on_books:
            failed_at, failure = i, result
            break
        if transfer is not None:
            recorded[transfer.id] = transfer
            new_ids.append(transfer.id)
            outcome.created.append(transfer)
            if transfer.flags & _PENDING:
                pendings[transfer.id] = PendingState(transfer)
    if failed_at is None:
        outcome.touched_accounts.update(saved_accounts)
        outcome.resolved_pending_ids.update(saved_pendings)
        return
    # Undo the chain: restore balances and pending states, forget created transfers.
    for account_id, before in saved_accounts.items():
        current = accounts[account_id]
        current.debits_pending, current.debits_posted = before.debits_pending, before.debits_posted
        current.credits_pending = before.credits_pending
        current.credits_posted = before.credits_posted
    for pending_id, status in saved_pendings.items():
        pendings[pending_id].status = status
    for transfer_id in new_ids:
        del recorded[transfer_id]
        pendings.pop(transfer_id, None)
    del outcome.created[created_mark:]
    for i in range(first, last + 1):
        outcome.results[i] = failure if i == failed_at else Result.LINKED_EVENT_FAILED
    if chain_open:
        outcome.results[last] = Result.LINKED_EVENT_CHAIN_OPEN


def _apply_one(
    spec: TransferSpec,
    accounts: Mapping[int, AccountState],
    recorded: Mapping[str, Transfer],
    pendings: MutableMapping[str, PendingState],
    now: int,
    system: bool,
    saved_accounts: dict[int, AccountState],
    saved_pendings: dict[str, PendingStatus],
) -> tuple[Result, Transfer | None]:
    """Validate and apply one transfer; returns its result and, if new, the recorded row."""
    static = validate_static(spec, system=system)
    if static is not Result.OK:
        return static, None
    previous = recorded.get(spec.id)
    if previous is not None:
        return (
            Result.EXISTS if same_fields(spec, previous) else Result.EXISTS_WITH_DIFFERENT_FIELDS
        ), None
    if spec.flags & _RESOLVE_FLAGS:
        return _resolve_pending(
            spec, accounts, recorded, pendings, now, saved_accounts, saved_pendings
        )
    debit = accounts.get(spec.debit_account_id)
    if debit is None:
        return Result.DEBIT_ACCOUNT_NOT_FOUND, None
    credit = accounts.get(spec.credit_account_id)
    if credit is None:
        return Result.CREDIT_ACCOUNT_NOT_FOUND, None
    if debit.ledger != credit.ledger:
        return Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, None
    if spec.ledger != debit.ledger:
        return Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, None
    amount = spec.amount or 0
    if (
        debit.flags & _NO_OVERDRAFT
        and debit.debits_pending + debit.debits_posted + amount > debit.credits_posted
    ):
        return Result.EXCEEDS_CREDITS, None
    if (
        credit.flags & _NO_OVERCREDIT
        and credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
    ):
        return Result.EXCEEDS_DEBITS, None
    if (
        max(
            debit.debits_pending + debit.debits_posted,
            credit.credits_pending + credit.credits_posted,
        )
        + amount
        > MAX_AMOUNT
    ):
        return Result.OVERFLOWS, None
    _save(saved_accounts, debit)
    _save(saved_accounts, credit)
    if spec.flags & _PENDING:
        debit.debits_pending += amount
        credit.credits_pending += amount
    else:
        debit.debits_posted += amount
        credit.credits_posted += amount
    transfer = Transfer(
        id=spec.id,
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=amount,
        ledger=spec.ledger,
        code=spec.code,
        flags=spec.flags,
        pending_id=None,
        timeout=spec.timeout,
        reference=spec.reference,
        timestamp=now,
    )
    return Result.OK, transfer


def _resolve_pending(
    spec: TransferSpec,
    accounts: Mapping[int, AccountState],
    recorded: Mapping[str, Transfer],
    pendings: MutableMapping[str, PendingState],
    now: int,
    saved_accounts: dict[int, AccountState],
    saved_pendings: dict[str, PendingStatus],
) -> tuple[Result, Transfer | None]:
    """Post (fully or partially) or void a pending transfer."""
    assert spec.pending_id is not None
    state = pendings.get(spec.pending_id)
    if state is None:
        # A non-pending transfer created earlier in this batch is not in ``pendings``.
        known = recorded.get(spec.pending_id)
        if known is not None and not known.flags & _PENDING:
            return Result.PENDING_TRANSFER_NOT_PENDING, None
        return Result.PENDING_TRANSFER_NOT_FOUND, None
    pending = state.transfer
    if not pending.flags & _PENDING:
        return Result.PENDING_TRANSFER_NOT_PENDING, None
    mismatch = _inherit_mismatch(spec, pending)
    if mismatch is not None:
        return mismatch, None
    if state.status is PendingStatus.POSTED:
        return Result.PENDING_TRANSFER_ALREADY_POSTED, None
    if state.status is PendingStatus.VOIDED:
        return Result.PENDING_TRANSFER_ALREADY_VOIDED, None
    if state.status is PendingStatus.EXPIRED:
        return Result.PENDING_TRANSFER_EXPIRED, None
    expires_at = pending.expires_at
    expired = expires_at is not None and expires_at <= now
    if spec.flags & _EXPIRED:
        if not expired:
            return Result.PENDING_TRANSFER_NOT_EXPIRED, None
    elif expired:
        return Result.PENDING_TRANSFER_EXPIRED, None
    posting = bool(spec.flags & _POST_PENDING)
    amount = spec.amount if posting and spec.amount else pending.amount
    if not posting and spec.amount not in (None, 0, pending.amount):
        return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT, None
    if amount > pending.amount:
        return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT, None
    debit = accounts[pending.debit_account_id]
    credit = accounts[pending.credit_account_id]
    _save(saved_accounts, debit)
    _save(saved_accounts, credit)
    saved_pendings.setdefault(pending.id, state.status)
    debit.debits_pending -= pending.amount
    credit.credits_pending -= pending.amount
    if posting:
        debit.debits_posted += amount
        credit.credits_posted += amount
        state.status = PendingStatus.POSTED
    else:
        amount = pending.amount
        expiring = spec.flags & _EXPIRED
        state.status = PendingStatus.EXPIRED if expiring else PendingStatus.VOIDED
    transfer = Transfer(
        id=spec.id,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=amount,
        ledger=pending.ledger,
        code=pending.code,
        flags=spec.flags,
        pending_id=pending.id,
        timeout=0,
        reference=spec.reference if spec.reference is not None else pending.reference,
        timestamp=now,
    )
    return Result.OK, transfer


def _inherit_mismatch(spec: TransferSpec, pending: Transfer) -> Result | None:
    """A post/void may omit accounts, ledger and code; any it gives must match the pending."""
    if spec.debit_account_id and spec.debit_account_id != pending.debit_account_id:
        return Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT
    if spec.credit_account_id and spec.credit_account_id != pending.credit_account_id:
        return Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT
    if spec.ledger and spec.ledger != pending.ledger:
        return Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
    if spec.code and spec.code != pending.code:
        return Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE
    return None


def _save(saved: dict[int, AccountState], state: AccountState) -> None:
    if state.id not in saved:
        saved[state.id] = state.copy()


def validate_static(spec: TransferSpec, *, system: bool = False) -> Result:
    """Checks that need nothing but the transfer itself."""
    if not spec.id:
        return Result.ID_MUST_NOT_BE_EMPTY
    if len(spec.id) > MAX_ID_LENGTH:
        return Result.ID_TOO_LONG
    # Plain ints: ~ of an IntFlag keeps only the defined bits and would let unknown bits pass.
    allowed = _CLIENT_FLAGS | (_EXPIRED if system else 0)
    if spec.flags & ~allowed:
        return Result.FLAGS_RESERVED
    phase = spec.flags & _PHASE_FLAGS
    if phase & (phase - 1):
        return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if spec.flags & _EXPIRED and not spec.flags & _VOID_PENDING:
        return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if spec.timeout < 0:
        return Result.TIMEOUT_MUST_NOT_BE_NEGATIVE
    if spec.timeout and not spec.flags & _PENDING:
        return Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if spec.amount is not None and spec.amount > MAX_AMOUNT:
        return Result.AMOUNT_TOO_LARGE
    if spec.flags & _RESOLVE_FLAGS:
        if not spec.pending_id:
            return Result.PENDING_ID_REQUIRED
        if spec.amount is not None and spec.amount < 0:
            return Result.AMOUNT_MUST_BE_POSITIVE
        return Result.OK
    if spec.pending_id:
        return Result.PENDING_ID_MUST_BE_EMPTY
    if spec.amount is None or spec.amount <= 0:
        return Result.AMOUNT_MUST_BE_POSITIVE
    if spec.debit_account_id == spec.credit_account_id:
        return Result.ACCOUNTS_MUST_BE_DIFFERENT
    if not spec.code:
        return Result.CODE_MUST_NOT_BE_ZERO
    return Result.OK


def same_fields(spec: TransferSpec, recorded: Transfer) -> bool:
    """Whether a retried spec asks for exactly the transfer already recorded under its id."""
    if spec.flags != recorded.flags or spec.pending_id != recorded.pending_id:
        return False
    if spec.timeout != recorded.timeout:
        return False
    resolving = bool(spec.flags & _RESOLVE_FLAGS)
    given = (
        (spec.debit_account_id, recorded.debit_account_id),
        (spec.credit_account_id, recorded.credit_account_id),
        (spec.ledger, recorded.ledger),
        (spec.code, recorded.code),
    )
    for mine, theirs in given:
        if (mine or not resolving) and mine != theirs:
            return False
    if (
        spec.amount is not None
        and not (resolving and spec.amount == 0)
        and (spec.amount != recorded.amount)
    ):
        return False
    return (spec.reference is None and resolving) or spec.reference == recorded.reference
