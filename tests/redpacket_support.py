"""Helpers for red-packet tests: many residents at once, funded senders, a real HTTP server.

``bulk_residents`` makes claimants cheaply: one argon2 hash shared by all (computed once; a
hash per user costs ~50 ms, so 1,000 sign-ups would cost about a minute of hashing alone),
and the rows sign-up, verification, the first wallet use and a login would leave, written in
batches: 1,000 residents take about a second on SQLite.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select, text

from citywallet.identity import sessions
from citywallet.identity.keys import phone_hash
from citywallet.identity.models import ExternalCheck, LoginSession, User
from citywallet.identity.queries import new_public_id
from citywallet.identity.rules import mask_phone, normalize_phone
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.redpacket.models import RedPacketGroup, RedPacketGroupMember
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.bank import SandboxBank
from citywallet.wallet.models import Wallet
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
    db: Database, encryptor: Encryptor, count: int, *, prefix: str = "1370"
) -> list[Claimant]:
    """``count`` tier-1 residents with phones ``{prefix}000NNNN``, each with a CNY wallet and
    a bearer session: the rows sign-up, one external check, the first wallet use and a login
    leave, written in batches (no SMS round, one shared password hash)."""
    made: list[Claimant] = []
    for start in range(0, count, CHUNK):
        numbers = range(start, min(start + CHUNK, count))

        def chunk(uow: UnitOfWork, numbers: range = numbers) -> list[Claimant]:
            moment = now_us()
            phones = [f"{prefix}000{n:04d}" for n in numbers]
            users = []
            for phone in phones:
                e164 = normalize_phone(phone)
                users.append(
                    User(
                        public_id=new_public_id("usr"),
                        phone_hash=phone_hash(encryptor, e164),
                        phone_enc=encryptor.encrypt(e164.encode()),
                        phone_masked=mask_phone(e164),
                        password_hash=_password_hash(),
                        status="active",
                        tier=1,  # one external check under the default thresholds [1, 3, 5]
                        external_checks=1,
                        created_at=moment,
                        updated_at=moment,
                    )
                )
            uow.session.add_all(users)
            uow.session.flush()
            accounts = ledger.create_accounts(
                uow,
                accounts=[
                    ledger.AccountSpec(
                        ledger=CURRENCY,
                        code=AccountCode.CUSTOMER_WALLET,
                        flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                        owner_ref=user.public_id,
                    )
                    for user in users
                ],
            )
            tokens = [sessions.TOKEN_PREFIX + secrets.token_urlsafe(32) for _ in users]
            for user, account, token in zip(users, accounts, tokens, strict=True):
                uow.session.add(
                    ExternalCheck(
                        user_id=user.id,
                        kind="resident_id",
                        count=1,
                        created_at=moment,
                        updated_at=moment,
                    )
                )
                uow.session.add(
                    Wallet(
                        user_id=user.public_id,
                        ledger_account_id=account,
                        currency=CURRENCY,
                        created_at=moment,
                    )
                )
                uow.session.add(
                    LoginSession(
                        public_id=new_public_id("ses"),
                        user_id=user.id,
                        token_hash=sessions.token_hash(token),
                        kind="bearer",
                        device_name="bulk",
                        user_agent="",
                        ip="10.0.0.2",
                        created_at=moment,
                        last_seen_at=moment,
                        expires_at=moment + 3600 * 1_000_000,
                    )
                )
            uow.session.flush()
            return [
                Claimant(user.public_id, phone, token)
                for user, phone, token in zip(users, phones, tokens, strict=True)
            ]

        made.extend(db.transact(chunk))
    return made


def join_group(db: Database, group_id: str, members: Sequence[Claimant]) -> None:
    """Put ``members`` into a group at once (a test shortcut: the service adds people one by
    one through identity's lookups, at most 100 per request)."""
    moment = now_us()

    def join(uow: UnitOfWork) -> None:
        group = uow.session.scalar(
            select(RedPacketGroup).where(RedPacketGroup.public_id == group_id)
        )
        assert group is not None
        uow.session.add_all(
            RedPacketGroupMember(
                group_id=group.id,
                user_id=who.user_id,
                role="member",
                added_by=group.owner_id,
                added_at=moment,
            )
            for who in members
        )

    db.transact(join)


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
    """What a packet's escrow accounts hold together (one, or its stripes)."""
    with db.uow(readonly=True) as uow:
        ids = [
            int(i)
            for (i,) in uow.session.execute(
                text("SELECT id FROM ledger_accounts WHERE owner_ref = :p"), {"p": packet_id}
            )
        ]
        views = ledger.get_accounts(uow, ids=ids)
    assert ids
    assert len(views) == len(ids)
    assert all(view.code == AccountCode.REDPACKET_ESCROW for view in views.values())
    return sum(view.balance for view in views.values())


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
