""" "Download my data": everything the wallet holds about the signed-in resident, as JSON
or CSV (PIPL art. 45, the right to a copy).

Sections: profile (masked, as the resident's own pages show it), bank cards (masked: first
six and last four), transactions (every history line with its ledger transfer ids, so each
can be checked against the ledger), consents (the state and the full history) and devices
(live sessions). Only the resident's own rows are read; nothing in clear that a page would
mask. The CSV starts with a UTF-8 BOM so Excel reads Chinese correctly, one section after
another, each with its own header row (English or, with ``headers="zh"``, Chinese).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from citywallet.identity import consent, sessions
from citywallet.identity import service as identity
from citywallet.platform import csvfile
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.cards import list_cards
from citywallet.wallet.history import INCOMING
from citywallet.wallet.models import Activity
from citywallet.wallet.rules import CHINA

FORMAT_VERSION = 1


@dataclass(frozen=True)
class MyData:
    """A resident's data, section by section (plain values, ready for JSON)."""

    exported_at: int
    profile: dict[str, Any]
    cards: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    consent_history: list[dict[str, Any]]
    devices: list[dict[str, Any]]


def export(uow: UnitOfWork, *, user_id: str, thresholds: Sequence[int] | None = None) -> MyData:
    """Collect the resident's data (read-only)."""
    profile = identity.get_profile(uow, user_id=user_id, thresholds=thresholds)
    user = profile.user
    cards = [
        {
            "id": c.id,
            "bank_code": c.bank_code,
            "bank_name": c.bank_name,
            "number_masked": c.number_masked,
            "last4": c.last4,
            "holder_name_masked": c.holder_name_masked,
            "status": c.status,
            "bound_at": c.created_at,
        }
        for c in list_cards(uow, user_id=user_id)
    ]
    rows = uow.session.scalars(
        select(Activity).where(Activity.user_id == user_id).order_by(Activity.id)
    )
    transactions = [
        {
            "id": r.object_id,
            "kind": r.kind,
            "direction": "in" if r.kind in INCOMING else "out",
            "amount": r.amount,
            "fee": r.fee,
            "currency": r.currency,
            "status": r.status,
            "counterparty": r.counterparty_label,
            "note": r.note,
            "created_at": r.created_at,
            "ledger_transfer_ids": json.loads(r.transfer_ids or "[]"),
        }
        for r in rows
    ]
    devices: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = sessions.list_sessions(uow, user_id=user_id, limit=100, cursor=cursor)
        devices.extend(
            {
                "id": s.id,
                "device_name": s.device_name,
                "user_agent": s.user_agent,
                "ip": s.ip,
                "signed_in_at": s.created_at,
                "last_seen_at": s.last_seen_at,
            }
            for s in page
        )
        if cursor is None:
            break
    return MyData(
        exported_at=now_us(),
        profile={
            "id": user.id,
            "phone_masked": user.phone_masked,
            "real_name_verified": user.real_name_verified,
            "name_masked": user.name_masked,
            "id_number_masked": profile.id_number_masked,
            "tier": user.tier,
            "status": user.status,
            "payment_pin_set": profile.pin_set,
            "created_at": profile.created_at,
        },
        cards=cards,
        transactions=transactions,
        consents=[asdict(v) for v in consent.list_consents(uow, user_id=user_id)],
        consent_history=[asdict(r) for r in consent.consent_history(uow, user_id=user_id)],
        devices=devices,
    )


def to_json(data: MyData) -> str:
    """The data as one JSON document (UTF-8, Chinese unescaped)."""
    body = {"format": "citywallet.mydata", "version": FORMAT_VERSION, **asdict(data)}
    return json.dumps(body, ensure_ascii=False, indent=2)


# (key, English, Chinese) per column, per section.
SECTIONS: dict[str, tuple[str, str, tuple[tuple[str, str, str], ...]]] = {
    "profile": ("Profile", "个人资料", (("field", "Field", "项目"), ("value", "Value", "内容"))),
    "cards": (
        "Bank cards",
        "银行卡",
        (
            ("id", "Card id", "银行卡编号"),
            ("bank_name", "Bank", "银行"),
            ("number_masked", "Card number (masked)", "卡号（脱敏）"),
            ("holder_name_masked", "Holder (masked)", "持卡人（脱敏）"),
            ("status", "Status", "状态"),
            ("bound_at", "Bound at", "绑定时间"),
        ),
    ),
    "transactions": (
        "Transactions",
        "交易记录",
        (
            ("id", "Transaction id", "交易编号"),
            ("kind", "Kind", "类型"),
            ("direction", "Direction", "收支"),
            ("amount", "Amount (yuan)", "金额（元）"),
            ("fee", "Fee (yuan)", "手续费（元）"),
            ("currency", "Currency", "币种"),
            ("status", "Status", "状态"),
            ("counterparty", "Counterparty", "对方"),
            ("note", "Note", "备注"),
            ("created_at", "Time", "时间"),
            ("ledger_transfer_ids", "Ledger transfers", "账本转账编号"),
        ),
    ),
    "consent_history": (
        "Consents",
        "授权记录",
        (
            ("purpose", "Purpose", "目的"),
            ("granted", "Given", "是否同意"),
            ("agreement_version", "Service agreement version", "服务协议版本"),
            ("privacy_version", "Privacy policy version", "隐私政策版本"),
            ("source", "Where", "来源"),
            ("created_at", "Time", "时间"),
        ),
    ),
    "devices": (
        "Devices",
        "登录设备",
        (
            ("id", "Session id", "会话编号"),
            ("device_name", "Device", "设备"),
            ("user_agent", "Browser", "浏览器"),
            ("ip", "IP address", "IP 地址"),
            ("signed_in_at", "Signed in", "登录时间"),
            ("last_seen_at", "Last seen", "最近使用"),
        ),
    ),
}
_TIMES = frozenset({"bound_at", "created_at", "signed_in_at", "last_seen_at"})
_MONEY = frozenset({"amount", "fee"})


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in _MONEY:
        return f"{value // 100}.{value % 100:02d}"
    if key in _TIMES and isinstance(value, int):
        moment = datetime.fromtimestamp(value / 1_000_000, UTC).astimezone(CHINA)
        return moment.isoformat(timespec="seconds")
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def to_csv(data: MyData, *, headers: str = "en") -> str:
    """The data as CSV for Excel: a BOM, then each section (a title row, a header row, its
    rows, a blank line)."""
    chinese = headers == "zh"
    out = [csvfile.BOM]
    for name, (title_en, title_zh, columns) in SECTIONS.items():
        header = csvfile.headers(columns, "zh" if chinese else "en")
        if name == "profile":
            items: list[list[str]] = [[k, _cell(k, v)] for k, v in data.profile.items()]
        else:
            records: list[dict[str, Any]] = getattr(data, name)
            items = [
                [_cell(key, record.get(key)) for key, _en, _zh in columns] for record in records
            ]
        out.append(csvfile.write([title_zh if chinese else title_en], [], bom=False))
        out.append(csvfile.write(header, items, bom=False))
        out.append("\r\n")
    return "".join(out)
