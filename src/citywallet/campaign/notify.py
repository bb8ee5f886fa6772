"""Telling winners by SMS: the outbox handler of ``campaign.won`` (``service.WON_TOPIC``).

Each issuance batch queues one message listing its winners
(``{"campaign_id", "winners": [[registration_id, user_id, prize], …]}``); delivering it
sends one SMS per winner with the idempotency key ``campaign.won:<registration id>``, so a
retried delivery (the outbox is at-least-once) never texts anyone twice. Phone numbers are
looked up and decrypted at delivery time: no personal data waits in the outbox.
"""

from __future__ import annotations

from datetime import timedelta, timezone

from citywallet.campaign.service import campaign_row
from citywallet.identity.gateways import SmsGateway
from citywallet.identity.service import user_phone
from citywallet.money import Money
from citywallet.platform import outbox
from citywallet.platform.clock import to_datetime
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.wallet.accounts import CURRENCY

SHANGHAI = timezone(timedelta(hours=8))


def idempotency_key(registration_id: str) -> str:
    """The SMS gateway key of one winner's message (one text per registration, ever)."""
    return f"campaign.won:{registration_id}"


def won_text(campaign_name: str, prize: Money, valid_from: int, valid_until: int) -> str:
    """The winner's SMS (mainland format: brand in 【】 first; times in Beijing time)."""
    start = to_datetime(valid_from).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    end = to_datetime(valid_until).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return (
        f"【城市钱包】恭喜您在「{campaign_name}」中签，获得消费红包 {prize.format()}，"
        f"{start} 至 {end} 可在参与商户使用。"
        f"You won a {prize.format()} red packet, valid {start} to {end} (Beijing time)."
    )


def won_handler(db: Database, gateway: SmsGateway, encryptor: Encryptor) -> outbox.OutboxHandler:
    """The outbox handler of topic ``campaign.won`` (wired into the worker by tasks.py)."""

    def deliver(message: outbox.Message) -> None:
        payload = message.payload
        with db.uow(readonly=True) as uow:
            row = campaign_row(uow, str(payload["campaign_id"]))
            name, valid_from, valid_until = row.name, row.valid_from, row.valid_until
            phones = {
                str(user_id): user_phone(uow, user_id=str(user_id), encryptor=encryptor)
                for _, user_id, _ in payload["winners"]
            }
        for registration_id, user_id, prize in payload["winners"]:
            text = won_text(name, Money(int(prize), CURRENCY), valid_from, valid_until)
            gateway.send(
                phones[str(user_id)], text, idempotency_key=idempotency_key(str(registration_id))
            )

    return deliver
