"""Helpers for red-packet tests: many residents at once, funded senders, a real HTTP server.

``bulk_residents`` makes claimants cheaply: one argon2 hash shared by all (computed once; a
hash per user costs ~50 ms each, so 1,000 users would cost about a minute), users inserted in
chunks, tier 1 through identity's own ``record_external_checks``, a wallet opened and a
bearer session issued by the identity service — the same rows sign-up would leave.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI

from citywallet.identity import sessions
from citywallet.identity.keys import phone_hash
from citywallet.identity.models import User
from citywallet.identity.queries import new_public_id
from citywallet.identity.rules import mask_phone, normalize_phone
from citywallet.identity.service import record_external_checks
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import ensure_wallet
from citywallet.wallet.bank import SandboxBank
from tests.identity_support import PASSWORD
from tests.wallet_support import PIN, Resident, make_resident

CHUNK = 250
T = TypeVar("T")


@dataclass(frozen=True)
class Claimant:
    """A resident made in bulk: tier 1, a wallet, a bearer session."""

    user_id: str
    phone: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of their session."""
        return {"Authorization": f"Bearer {self.token}"}


@cache
def _password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


def bulk_residents(
    db: Database, encryptor: Encryptor, count: int, *, prefix: str = "1370", tier_checks: int = 1
) -> list[Claimant]:
    """``count`` residents with phones ``{prefix}000NNNN`` (``tier_checks`` external checks:
    1 = tier 1 under the default thresholds), each with a wallet and a bearer session."""
    made: list[Claimant] = []
    for start in range(0, count, CHUNK):
        numbers = range(start, min(start + CHUNK, count))

        def chunk(uow: UnitOfWork, numbers: range = numbers) -> list[Claimant]:
            moment = now_us()
            rows: list[tuple[User, str]] = []
            for n in numbers:
                phone = f"{prefix}000{n:04d}"
                e164 = normalize_phone(phone)
                user = User(
                    public_id=new_public_id("usr"),
                    phone_hash=phone_hash(encryptor, e164),
                    phone_enc=encryptor.encrypt(e164.encode()),
                    phone_masked=mask_phone(e164),
                    password_hash=_password_hash(),
                    status="active",
                    tier=0,
                    external_checks=0,
                    created_at=moment,
                    updated_at=moment,
                )
                rows.append((user, phone))
            uow.session.add_all(user for user, _ in rows)
            uow.session.flush()
            out: list[Claimant] = []
            for user, phone in rows:
                if tier_checks:
                    record_external_checks(
                        uow,
                        user_id=user.public_id,
                        count=tier_checks,
                        kind="resident_id",
                        thresholds=[1, 3, 5],
                    )
                ensure_wallet(uow, user_id=user.public_id)
                issued = sessions.create_session(
                    uow,
                    user=user,
                    kind="bearer",
                    device_name="bulk",
                    user_agent="",
                    ip="10.0.0.2",
                    ttl_seconds=3600,
                )
                out.append(Claimant(user.public_id, phone, issued.token))
            return out

        made.extend(db.transact(chunk))
    return made


def funded_resident(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    bank: SandboxBank,
    n: int,
    amount: int,
) -> Resident:
    """Resident ``n`` (verified, PIN, card) with ``amount`` fen topped up."""
    who = make_resident(db, settings, encryptor, bank, n)
    if amount:
        wallet.top_up(
            db,
            bank=bank,
            user_id=who.user_id,
            card_id=str(who.card_id),
            amount=amount,
            pin=PIN,
            encryptor=encryptor,
            settings=settings,
        )
    return who


@dataclass
class Env:
    """A database and what every red-packet service call needs, with shortcuts."""

    db: Database
    settings: Settings
    enc: Encryptor
    bank: SandboxBank

    def run(self, fn: Callable[[UnitOfWork], T]) -> T:
        """``fn`` in one committed transaction."""
        return self.db.transact(fn)

    def resident(self, n: int, amount: int = 0) -> Resident:
        """Resident ``n`` (verified, PIN, card) with ``amount`` fen in the wallet."""
        return funded_resident(self.db, self.settings, self.enc, self.bank, n, amount)

    def group(self, owner: Resident, *members: Resident, name: str = "家人") -> redpacket.GroupView:
        """A group of ``owner`` with ``members`` (added by phone)."""
        return self.run(
            lambda uow: redpacket.create_group(
                uow,
                user_id=owner.user_id,
                name=name,
                members=[m.phone for m in members],
                encryptor=self.enc,
                settings=self.settings,
            )
        )

    def send(self, sender: Resident, amount: int, **kwargs: Any) -> redpacket.PacketView:
        """``send_packet`` as ``sender``."""
        return self.run(
            lambda uow: redpacket.send_packet(
                uow,
                user_id=sender.user_id,
                amount=amount,
                encryptor=self.enc,
                settings=self.settings,
                **kwargs,
            )
        )

    def claim(self, who: Resident | str, packet_id: str, **kwargs: Any) -> redpacket.ClaimResult:
        """``claim_packet`` as ``who`` (a resident or a user id)."""
        user_id = who if isinstance(who, str) else who.user_id
        return self.run(
            lambda uow: redpacket.claim_packet(
                uow, user_id=user_id, packet_id=packet_id, settings=self.settings, **kwargs
            )
        )

    def packet(self, who: Resident | str, packet_id: str) -> redpacket.PacketView:
        """``get_packet`` as ``who``."""
        user_id = who if isinstance(who, str) else who.user_id
        with self.db.uow(readonly=True) as uow:
            return redpacket.get_packet(uow, user_id=user_id, packet_id=packet_id)


def refused(code: str, fn: Callable[[], object]) -> DomainError:
    """Call ``fn`` and assert it raises the domain error ``code``."""
    with pytest.raises(DomainError) as caught:
        fn()
    assert caught.value.code == code, (caught.value.code, caught.value.detail)
    return caught.value


def escrow_balance(db: Database, packet_id: str) -> int:
    """The balance of a packet's escrow account."""
    with db.uow(readonly=True) as uow:
        account_id = ledger.find_account(uow, owner_ref=packet_id)
        assert account_id is not None
        view = ledger.get_account(uow, account_id=account_id)
    assert view is not None
    assert view.code == AccountCode.REDPACKET_ESCROW
    return view.balance


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn server on a free loopback port, in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=4096)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
