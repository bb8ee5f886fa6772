"""Moving a resident between two running cells (docs/interop.md, "Moving a resident between
cells"): the switch and two cells as real processes on PostgreSQL (``Cells(2)``).

A resident of cell-1 with a top-up, an in-cell P2P and a cross-cell payment in their history
is moved to cell-2 with ``citywallet interop move``, first stopped right after the balance's
prepare (a crash drill) and then run again. Afterwards: they sign in at cell-2 with the same
password, the balance is the same, the old history is there (marked as from cell-1) with
the move's line, a payment to their number from cell-1 lands at cell-2, the old cell
answers ``account_moved`` naming cell-2, the balance moved in exactly one switch transfer,
both cells' ledgers verify and the settlement window nets to zero. Refusals change nothing:
an unknown number, and a destination that is no participant (refused by the switch, the
freeze lifted).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from citywallet.interop.cells import Cells, Resident, cli_command, pay_across
from tests.cells_support import settle
from tests.conftest import PG_ADMIN_URL

TOP_UP = 50_000


@dataclass
class Two:
    cells: Cells
    engines: dict[str, Engine]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:  # fail, never skip, without PostgreSQL
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    cells = Cells(
        2, prefix=f"cwt_move_{os.getpid()}", residents=2, top_up=TOP_UP,
        workdir=tmp_path_factory.mktemp("move"), pg_url=PG_ADMIN_URL,
    )  # fmt: skip
    with cells:
        urls = {c.id: c.database_url for c in cells.cells} | {"switch": cells.switch_database_url}
        engines = {name: create_engine(url, pool_size=2) for name, url in urls.items()}
        try:
            yield Two(cells, engines)
        finally:
            for e in engines.values():
                e.dispose()


def _move(two: Two, phone: str, to: str, *extra: str) -> tuple[int, str]:
    """``citywallet interop move`` as cell-1; its exit code and output."""
    cell = two.cells.cell("cell-1")
    done = subprocess.run(
        cli_command("interop", "move", phone, "--to", to, *extra), env=cell.process.env,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _last_json(output: str) -> dict[str, object]:
    line = [x for x in output.splitlines() if x.startswith("{")][-1]
    found: dict[str, object] = json.loads(line)
    return found


def _balance(url: str, headers: dict[str, str]) -> int:
    with httpx2.Client(base_url=url, timeout=10) as http:
        answer = http.get("/v1/wallet", headers=headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["balance"])


def _login(url: str, phone: str, password: str) -> httpx2.Response:
    with httpx2.Client(base_url=url, timeout=30) as http:
        return http.post("/v1/auth/login", json={"phone": phone, "password": password})


def _p2p(url: str, payer: Resident, to: str, amount: int) -> None:
    with httpx2.Client(base_url=url, timeout=30) as http:
        answer = http.post(
            "/v1/wallet/transfers",
            json={"to": to, "amount": amount, "currency": "CNY", "pin": payer.pin},
            headers={**payer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
    assert answer.status_code == 201, answer.text


def test_a_resident_moves_with_money_history_and_number(two: Two) -> None:
    one, other = two.cells.cell("cell-1"), two.cells.cell("cell-2")
    mover, neighbour = one.residents
    friend = other.residents[0]
    # history at cell-1: the top-up (seeded), an in-cell P2P, a cross-cell payment
    _p2p(one.url, mover, neighbour.phone, 1_000)
    with httpx2.Client(base_url=one.url, timeout=30) as http:
        paid = pay_across(http, mover, friend.phone, 2_000)
    assert paid.state == "committed"
    balance = _balance(one.url, mover.headers)
    assert balance == TOP_UP - 3_000

    # refused, nothing changes: an unknown number; a destination that is no participant
    code, out = _move(two, "13700000000", "cell-2")
    assert code == 2, out
    assert "move_resident_not_found" in out, out
    code, out = _move(two, neighbour.phone, "cell-9")
    assert code == 2, out
    refused = _last_json(out)
    assert (refused["state"], refused["error_code"]) == ("refused", "3201"), refused
    again_in = _login(one.url, neighbour.phone, neighbour.password)  # the freeze ended sessions
    assert again_in.status_code == 200, again_in.text
    neighbour = replace(neighbour, token=again_in.json()["session"]["token"])
    assert _balance(one.url, neighbour.headers) == TOP_UP + 1_000

    # the move, stopped after the balance's prepare (a crash drill), then run again
    code, out = _move(two, mover.phone, "cell-2", "--stop-after", "transferring")
    assert code == 0, out
    assert _last_json(out)["state"] == "transferring"
    assert _login(one.url, mover.phone, mover.password).json()["code"] == "account_frozen"
    code, out = _move(two, mover.phone, "cell-2")
    assert code == 0, out
    done = _last_json(out)
    assert (done["state"], done["balance"]) == ("done", balance), done
    again = _last_json(_move(two, mover.phone, "cell-2")[1])  # a third run changes nothing
    assert again["move_id"] == done["move_id"]
    assert again["state"] == "done"

    # exactly one switch transfer carried the balance
    with two.engines["cell-1"].connect() as conn:
        carried = conn.execute(
            text("SELECT state, amount FROM interop_transfers WHERE idempotency_key = :k"),
            {"k": done["move_id"]},
        ).all()
    assert [(s, int(a)) for s, a in carried] == [("COMMITTED", balance)]

    # the old cell says where the wallet is now
    old = _login(one.url, mover.phone, mover.password)
    assert old.status_code == 403
    assert old.json()["code"] == "account_moved"
    assert old.json()["cell"] == "cell-2"

    # the new cell: same password, same balance, the old history and the move's line
    signed = _login(other.url, mover.phone, mover.password)
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['session']['token']}"}
    assert _balance(other.url, headers) == balance
    with httpx2.Client(base_url=other.url, timeout=10) as http:
        lines = http.get("/v1/wallet/transactions", params={"limit": 50}, headers=headers)
    items = lines.json()["items"]
    old_lines = [i for i in items if i["origin"] == "cell-1"]
    assert {i["kind"] for i in old_lines} == {"topup", "transfer_out"}
    assert len(old_lines) == 3  # top-up, P2P, cross-cell payment
    newest = items[0]
    assert newest["kind"] == "transfer_in"
    assert newest["amount"] == balance
    assert newest["origin"] is None
    assert newest["status"] == "succeeded"

    # a payment to that number from cell-1 lands at cell-2
    with httpx2.Client(base_url=one.url, timeout=30) as http:
        later = pay_across(http, neighbour, mover.phone, 500)
    assert later.state == "committed"
    assert _balance(other.url, headers) == balance + 500

    # books: both ledgers verify, the window nets to zero and each cell settles its net
    for cell in (one, other):
        assert "ledger verified" in two.cells.cli(cell, "ledger", "verify")
    assert {one.id, other.id} <= set(settle(two.cells, two.engines))  # both posted a net
    with two.engines["switch"].connect() as conn:
        relayed = conn.execute(text("SELECT state FROM switch_moves ORDER BY created_at")).all()
    assert [r[0] for r in relayed] == ["ACCEPTED"]  # cell-9's was never relayed
    # the package's personal data left no copy in either outbox
    for name in ("cell-1", "switch"):
        with two.engines[name].connect() as conn:
            payloads = conn.execute(text("SELECT payload FROM platform_outbox")).scalars().all()
        assert not [p for p in payloads if '"idNumber"' in p], name
