"""``citywallet ledger verify``: prove the books balance and nothing sealed was changed.

Checks, each naming the damage it finds:
1. per ledger, the sum of all debits equals the sum of all credits (posted and pending);
2. every account's four counters equal their recomputation from the transfers;
3. no account with a no-overdraft flag is overdrawn;
4. every pending transfer is resolved at most once, by a transfer of the right kind;
5. every block: chain to its predecessor, signature, Merkle root over its sealed leaves;
6. every sealed transfer: its content still hashes to the leaf sealed at its position, and no
   sealed leaf is missing (deleted) or out of place (reordered); no transfer claims a block
   that is gone; every transfer not sealed yet still matches its stored hash;
7. the global log, recomputed from the transfers' own fields (not their stored hashes):
   positions without gaps, the stored tree, every stored checkpoint, and every checkpoint
   kept elsewhere (``outside``: a witness's copy) — the one check that catches a rewrite
   resealed and re-signed with the platform's own key;
8. with ``max_unsealed_age_us``: no transfer waits for its seal longer than that (a stalled
   or withheld seal keeps transfers out of every checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from citywallet.ledger.blocks import verify_blocks
from citywallet.ledger.log import verify_log
from citywallet.ledger.types import AccountFlags, ProgressFn, VerifyReport
from citywallet.ledger.verifier import Checkpoint
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork


def verify_ledger(
    uow: UnitOfWork,
    *,
    public_key: bytes | None = None,
    progress: ProgressFn | None = None,
    outside: Sequence[Checkpoint] = (),
    max_unsealed_age_us: int | None = None,
    now: int | None = None,
) -> VerifyReport:
    """Run every check; ``public_key`` (raw Ed25519) enables signature checks of blocks and
    checkpoints, ``outside`` holds the log to checkpoints kept elsewhere."""
    conn = uow.session.connection()
    report = VerifyReport()
    _check_counters(conn, report, progress)
    verify_blocks(uow, report, public_key=public_key, progress=progress)
    verify_log(uow, report, public_key=public_key, outside=outside, progress=progress)
    if max_unsealed_age_us is not None:
        _check_unsealed_age(conn, report, max_unsealed_age_us, now_us() if now is None else now)
    return report


def _check_unsealed_age(conn: Connection, report: VerifyReport, bound: int, now: int) -> None:
    """Check 8: the oldest unsealed transfer is younger than the bound."""
    row = conn.execute(
        text(
            "SELECT COUNT(*), MIN(timestamp) FROM ledger_transfers "
            "WHERE block_height IS NULL AND timestamp < :cutoff"
        ),
        {"cutoff": now - bound},
    ).one()
    if int(row[0]):
        age = (now - int(row[1])) / 1_000_000
        report.problems.append(
            f"sealing: {int(row[0])} transfers unsealed for longer than {bound / 1_000_000:g} s "
            f"(the oldest for {age:.0f} s): sealing is stalled or withheld"
        )


_RECOMPUTE = """
SELECT a.id, a.flags, a.ledger,
       a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
       COALESCE(d.pending, 0), COALESCE(d.posted, 0), COALESCE(c.pending, 0), COALESCE(c.posted, 0)
FROM ledger_accounts a
LEFT JOIN (
    SELECT account_id, SUM(pending) AS pending, SUM(posted) AS posted FROM (
        SELECT debit_account_id AS account_id,
               CASE WHEN flags & 2 = 2 THEN amount
                    WHEN flags & 12 <> 0 THEN -p_amount ELSE 0 END AS pending,
               CASE WHEN flags & 8 = 8 OR flags & 2 = 2 THEN 0 ELSE amount END AS posted
        FROM ({resolved}) t
    ) x GROUP BY account_id
) d ON d.account_id = a.id
LEFT JOIN (
    SELECT account_id, SUM(pending) AS pending, SUM(posted) AS posted FROM (
        SELECT credit_account_id AS account_id,
               CASE WHEN flags & 2 = 2 THEN amount
                    WHEN flags & 12 <> 0 THEN -p_amount ELSE 0 END AS pending,
               CASE WHEN flags & 8 = 8 OR flags & 2 = 2 THEN 0 ELSE amount END AS posted
        FROM ({resolved}) t
    ) x GROUP BY account_id
) c ON c.account_id = a.id
ORDER BY a.id
"""
# Each transfer with, for posts and voids, the amount of the pending transfer they release.
_RESOLVED = (
    "SELECT t.debit_account_id, t.credit_account_id, t.amount, t.flags, "
    "COALESCE(p.amount, 0) AS p_amount FROM ledger_transfers t "
    "LEFT JOIN ledger_transfers p ON p.id = t.pending_id"
)


def _check_counters(conn: Connection, report: VerifyReport, progress: ProgressFn | None) -> None:
    """Checks 1–4: balance per ledger, counters, flags, pending resolution."""
    rows = conn.exec_driver_sql(_RECOMPUTE.format(resolved=_RESOLVED)).all()
    totals: dict[str, list[int]] = {}
    for row in rows:
        account_id, flags, ledger = int(row[0]), int(row[1]), str(row[2])
        stored = tuple(int(v) for v in row[3:7])
        computed = tuple(int(v) for v in row[7:11])
        report.accounts += 1
        if stored != computed:
            names = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
            diffs = ", ".join(
                f"{n} stored {s} but transfers give {c}"
                for n, s, c in zip(names, stored, computed, strict=True)
                if s != c
            )
            report.problems.append(f"account {account_id}: {diffs}")
        dp, dpo, cp, cpo = stored
        if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and dp + dpo > cpo:
            report.problems.append(
                f"account {account_id}: overdrawn (debits {dp + dpo} > credits {cpo}) "
                "despite debits_must_not_exceed_credits"
            )
        if flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and cp + cpo > dpo:
            report.problems.append(
                f"account {account_id}: credits {cp + cpo} exceed debits {dpo} "
                "despite credits_must_not_exceed_debits"
            )
        sums = totals.setdefault(ledger, [0, 0, 0, 0])
        for i, value in enumerate(computed):
            sums[i] += value
        if progress and report.accounts % 1000 == 0:
            progress("accounts", report.accounts, len(rows))
    for ledger, (dp, dpo, cp, cpo) in sorted(totals.items()):
        if dpo != cpo or dp != cp:
            report.problems.append(
                f"ledger {ledger}: debits {dpo} posted / {dp} pending but credits {cpo} posted "
                f"/ {cp} pending"
            )
    bad_resolutions = conn.exec_driver_sql(
        "SELECT t.id, t.pending_id FROM ledger_transfers t "
        "LEFT JOIN ledger_transfers p ON p.id = t.pending_id "
        "WHERE t.pending_id IS NOT NULL AND (p.id IS NULL OR p.flags & 2 = 0 "
        "OR p.debit_account_id <> t.debit_account_id "
        "OR p.credit_account_id <> t.credit_account_id OR t.amount > p.amount)"
    ).all()
    for transfer_id, pending_id in bad_resolutions:
        report.problems.append(
            f"transfer {transfer_id}: resolves {pending_id}, which is missing, not pending, "
            "or has other accounts or a smaller amount"
        )
    report.transfers = int(
        conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_transfers").scalar_one()
    )
