"""Delivering the wallet's outbox messages: split-bill reminders by SMS.

The message payload holds ids and amounts only; the phone number is looked up (and
decrypted) at delivery time, so no personal data waits in the outbox.
"""

from __future__ import annotations

from citywallet.identity.gateways import SmsGateway
from citywallet.identity.service import get_user, user_phone
from citywallet.money import Money
from citywallet.platform import outbox
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database


def reminder_text(creator: str, amount: Money, split_id: str) -> str:
    """The text of a split-bill reminder (mainland format: brand in 【】 first)."""
    return (
        f"【城市钱包】{creator} 提醒您支付 AA 收款 {amount.format()}（{split_id}）。"
        f"{creator} reminds you to pay your share of {amount.format()}."
    )


def reminder_handler(
    db: Database, gateway: SmsGateway, encryptor: Encryptor
) -> outbox.OutboxHandler:
    """The outbox handler of topic ``wallet.split_reminder`` (``transfers.REMINDER_TOPIC``;
    the composition root wires it into the worker's outbox delivery)."""

    def deliver(message: outbox.Message) -> None:
        payload = message.payload
        with db.uow(readonly=True) as uow:
            phone = user_phone(uow, user_id=payload["user_id"], encryptor=encryptor)
            creator = get_user(uow, user_id=payload["creator_id"])
        text = reminder_text(
            creator.name_masked or creator.phone_masked,
            Money(int(payload["amount"]), payload["currency"]),
            payload["split_id"],
        )
        gateway.send(phone, text, idempotency_key=f"outbox:{message.id}")

    return deliver
