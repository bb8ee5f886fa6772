"""Two sealers at once (the worker's periodic seal and `ledger seal` by hand) take turns."""

from __future__ import annotations

import threading

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import load_signer, seal_block
from citywallet.ledger.types import Result
from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.ledger_support import funded_accounts, p2p


def test_concurrent_sealers_never_collide(db: Database) -> None:
    _bank, (a, b) = funded_accounts(db, 2, 10_000)
    signer = db.transact(lambda uow: load_signer(uow, test_encryptor()))
    sealed: list[int] = []
    errors: list[BaseException] = []
    for round_ in range(5):
        results = db.transact(
            lambda uow, r=round_: ledger.post(
                uow, transfers=[p2p(f"r{r}-{i}", a, b, 1) for i in range(20)]
            )
        )
        assert set(results) == {Result.OK}
        barrier = threading.Barrier(3)

        def seal(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                sealed.append(db.transact(lambda uow: seal_block(uow, signer)))
            except BaseException as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=seal) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sum(sealed) == 2 + 5 * 20  # the funding transfers and every round's, once each
    assert_ledger_clean(db, seal=False)
