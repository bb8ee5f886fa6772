"""The payments bench's request lines are what the API accepts: bulk-inserted payment-code
devices with signed charge lines, and P2P transfer lines (bench/payments.py)."""

from __future__ import annotations

import argparse
import time

from bench import payments
from fastapi.testclient import TestClient
from rich.progress import Progress

from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner, fund
from tests.wallet_support import Person


def _resident(person: Person, n: int) -> payments.Resident:
    token = person.headers["Authorization"].removeprefix("Bearer ")
    return payments.Resident(n, person.user_id, person.phone, token, person.card_id)


def test_bench_charge_and_transfer_lines_pay(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice, bob = Person(client, 2), Person(client, 3)
    fund(alice, 100_00)
    fund(bob, 100_00)
    people = [_resident(alice, 2), _resident(bob, 3)]
    args = argparse.Namespace(paycode_devices=4, p2p_transfers=4)
    with Progress(disable=True) as progress:
        devices = payments.insert_devices(runtime, args, people, progress, "test")
    assert len(devices) == 4
    setup = payments.PaycodeSetup(
        devices=devices, keys=[(shop.api.key_id, shop.api.secret)], payers=[]
    )
    lines = runtime.settings.var_dir / "charges.tsv"
    step = payments.paycode.counter_at(time.time())
    written = payments.write_charges(
        setup, lines, first_step=step, last_step=step, tag="test", merchants=1
    )
    assert written == 4
    charged = 0
    for line in lines.read_text().splitlines():
        _step, authorization, body = line.split("\t")
        answer = client.post(
            payments.KINDS["paycode"].path,
            content=body.encode(),
            headers={"Authorization": authorization, "Content-Type": "application/json"},
        )
        assert answer.status_code == payments.KINDS["paycode"].expected_status, answer.text
        assert answer.json()["status"] == "paid"
        charged += answer.json()["amount"]

    transfers = runtime.settings.var_dir / "p2p.tsv"
    payments.write_transfers(args, people, transfers)
    sent: dict[str, int] = {alice.user_id: 0, bob.user_id: 0}
    for n, line in enumerate(transfers.read_text().splitlines()):
        token, body = line.split("\t")
        answer = client.post(
            payments.KINDS["p2p"].path,
            content=body.encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"bench-test-{n}",
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == payments.KINDS["p2p"].expected_status, answer.text
        sender = alice.user_id if token == people[0].token else bob.user_id
        sent[sender] += answer.json()["amount"]
    balances = alice.wallet()["balance"] + bob.wallet()["balance"]
    assert balances == 200_00 - charged  # transfers move money between them only
    assert sent[alice.user_id] > 0
    assert sent[bob.user_id] > 0
    assert_ledger_clean(runtime.db)
