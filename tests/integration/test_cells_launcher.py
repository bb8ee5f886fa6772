"""The cells launcher (interop/cells.py) without a switch: real `citywallet serve` processes on
their own PostgreSQL databases, residents seeded through each cell's API, a cell SIGKILLed and
started again on the same port and database, everything dropped at the end."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, text

from citywallet.interop.cells import Cells, phone_of
from citywallet.interop.faultproxy import FaultRates
from tests.conftest import PG_ADMIN_URL


def _databases(prefix: str) -> set[str]:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "_%"}
            )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_cells_start_seed_survive_a_kill_and_are_dropped(db_url: str, tmp_path: Path) -> None:
    del db_url  # only makes PostgreSQL required (CI fails without it)
    prefix = f"cwt_launch_{os.getpid()}"
    with Cells(
        2, prefix=prefix, switch=False, residents=2, top_up=12_345, workdir=tmp_path,
        pg_url=PG_ADMIN_URL, proxy=FaultRates(),
    ) as cells:  # fmt: skip
        assert _databases(prefix) == {f"{prefix}_cell_1", f"{prefix}_cell_2"}
        assert [c.id for c in cells.cells] == ["cell-1", "cell-2"]
        phones = [r.phone for c in cells.cells for r in c.residents]
        assert phones == [phone_of(1, 1), phone_of(1, 2), phone_of(2, 1), phone_of(2, 2)]
        for cell in cells.cells:
            assert cell.public_url.endswith("/fspiop")
            assert cell.proxy is not None
            assert cell.public_url.startswith(cell.proxy.url)
            with httpx2.Client(base_url=cell.url) as client:
                for resident in cell.residents:
                    wallet = client.get("/v1/wallet", headers=resident.headers).json()
                    assert wallet["balance"] == 12_345
                    assert wallet["tier"] >= 1  # verified real name
            with httpx2.Client(base_url=cell.proxy.url) as client:  # the proxy reaches it
                assert client.get("/healthz").json()["database"] == "postgresql"
            assert "ledger verified" in cells.cli(cell, "ledger", "verify")

        first = cells.cells[0]
        resident = first.residents[0]
        first.process.kill()
        assert first.process.popen is not None
        assert first.process.popen.returncode is not None
        first.process.start()
        first.process.wait_ready()
        with httpx2.Client(base_url=first.url) as client:
            assert client.get("/v1/wallet", headers=resident.headers).json()["balance"] == 12_345
    assert _databases(prefix) == set()
    assert all(c.process.popen is not None and c.process.popen.poll() is not None
               for c in cells.cells)  # fmt: skip
