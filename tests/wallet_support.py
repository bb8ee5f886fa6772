"""Helpers for wallet tests: residents with a verified name, a PIN and a bound card."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from citywallet.identity import consent
from citywallet.identity import service as identity
from citywallet.identity.gateways import SandboxIdentityVerifier
from citywallet.identity.pins import set_payment_pin
from citywallet.ledger import service as ledger
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import find_wallet
from citywallet.wallet.bank import SandboxBank, sandbox_card_number
from tests.identity_support import PASSWORD, resident_id, sign_up, test_settings

PIN = "502817"


class FakeClock:
    """A clock the sandbox bank reads (seconds), moved by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def wallet_settings(tmp_path: Path, db: Database, **overrides: object) -> Settings:
    """Settings for wallet tests: no sandbox latency, short bank timeouts."""
    values: dict[str, object] = {
        "sandbox_bank_latency_ms": 0,
        "bank_timeout_seconds": 0.01,
        "sandbox_bank_late_answer_seconds": 0.0,
    }
    values.update(overrides)
    return test_settings(tmp_path, db, **values)


def sandbox_bank(
    clock: FakeClock | None = None, *, late_answer_seconds: float = 0.0
) -> SandboxBank:
    """An in-memory sandbox bank that never sleeps."""
    return SandboxBank(
        latency_ms=0,
        timeout_seconds=0.01,
        late_answer_seconds=late_answer_seconds,
        sleep=lambda _seconds: None,
        clock=clock or FakeClock(),
    )


@dataclass(frozen=True)
class Resident:
    """A signed-up user (and what the tests need to act as them)."""

    user_id: str
    phone: str
    token: str
    card_id: str | None
    card_number: str | None
    name: str


_NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰", "吴霞"]


def make_resident(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    bank: SandboxBank,
    n: int,
    *,
    verify: bool = True,
    pin: bool = True,
    card_ending: str | None = "0000",
    card_bin: str = "622202",
) -> Resident:
    """Resident number ``n``: signed up; optionally verified, with a PIN and a bound card."""
    phone = f"1380013{n:04d}"
    login = sign_up(db, settings, encryptor, phone)
    user_id = login.user.id
    name = _NAMES[n % len(_NAMES)]
    if verify:
        identity.verify_real_name(
            db,
            user_id=user_id,
            name=name,
            id_number=resident_id(sequence=f"{n % 900 + 1:03d}", birth=f"1990{n % 12 + 1:02d}15"),
            verifier=SandboxIdentityVerifier(),
            settings=settings,
            encryptor=encryptor,
        )
    if pin:
        db.transact(lambda uow: set_payment_pin(uow, user_id=user_id, pin=PIN, encryptor=encryptor))
    card_id = card_number = None
    if verify and card_ending is not None:
        card_number = sandbox_card_number(card_ending, bin_=card_bin, serial=n)
        card = wallet.bind_card(
            db,
            bank=bank,
            user_id=user_id,
            card_number=card_number,
            phone=phone,
            encryptor=encryptor,
            settings=settings,
        )
        card_id = card.id
    return Resident(user_id, phone, login.session.token, card_id, card_number, name)


def bind_extra_card(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    bank: SandboxBank,
    who: Resident,
    ending: str,
) -> str:
    """Bind another card (magic ending) to ``who``; returns its id."""
    card = wallet.bind_card(
        db,
        bank=bank,
        user_id=who.user_id,
        card_number=sandbox_card_number(ending, bin_="622700", serial=int(who.phone[-4:])),
        phone=who.phone,
        encryptor=encryptor,
        settings=settings,
    )
    return card.id


def balance(db: Database, user_id: str) -> tuple[int, int, int]:
    """(balance, pending incoming, pending outgoing) of a user's wallet."""
    with db.uow(readonly=True) as uow:
        account_id = find_wallet(uow, user_id=user_id)
        view = ledger.get_account(uow, account_id=account_id) if account_id else None
    if view is None:
        return 0, 0, 0
    return view.balance, view.credits_pending, view.debits_pending


def platform_balance(db: Database, owner_ref: str) -> int:
    """The balance of a platform account (0 if it was never opened)."""
    with db.uow(readonly=True) as uow:
        account_id = ledger.find_account(uow, owner_ref=owner_ref)
        view = ledger.get_account(uow, account_id=account_id) if account_id else None
    return view.balance if view else 0


def count(db: Database, sql: str, **params: object) -> int:
    """``SELECT COUNT(*) …`` as an int."""
    with db.uow(readonly=True) as uow:
        return int(uow.session.execute(text(sql), params).scalar_one())


class Person:
    """A resident driven through the API."""

    def __init__(self, client: TestClient, n: int, *, card_ending: str | None = "0000") -> None:
        self.client = client
        self.phone = f"1390013{n:04d}"
        sent = client.post("/v1/auth/sms-codes", json={"phone": self.phone})
        assert sent.status_code == 202, (sent.status_code, sent.text)
        sms = client.get("/v1/dev/sms", params={"phone": self.phone}).json()["items"][0]
        code = re.search(r"\d{6}", sms["text"])
        assert code
        signed = client.post(
            "/v1/auth/register",
            json={
                "phone": self.phone,
                "code": code.group(),
                "password": PASSWORD,
                "consent": consent.signup_body(),
            },
        )
        assert signed.status_code == 201, signed.text
        self.user_id: str = signed.json()["user"]["id"]
        self.headers = {"Authorization": f"Bearer {signed.json()['session']['token']}"}
        self.id_number = resident_id(sequence=f"{n:03d}")
        verified = self.post("/v1/me/real-name", {"name": "张三丰", "id_number": self.id_number})
        assert verified.status_code == 200, verified.text
        pin = self.post("/v1/me/payment-pin", {"pin": PIN, "password": PASSWORD})
        assert pin.status_code == 204, pin.text
        self.card_number = sandbox_card_number(card_ending or "0000", serial=n)
        self.card_id = ""
        if card_ending is not None:
            self.card_id = self.bind(self.card_number)["id"]

    def bind(self, number: str) -> dict[str, Any]:
        response = self.post("/v1/wallet/cards", {"card_number": number, "phone": self.phone})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> Response:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(path, json=body, headers=headers)

    def get(self, path: str, **params: Any) -> Response:
        return self.client.get(path, headers=self.headers, params=params)

    def money(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, body, key=str(uuid.uuid4()))
        assert response.status_code in (200, 201, 202), response.text
        data: dict[str, Any] = response.json()
        return data

    def wallet(self) -> dict[str, Any]:
        response = self.get("/v1/wallet")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data
