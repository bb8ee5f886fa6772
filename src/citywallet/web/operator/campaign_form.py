"""The new-campaign form: typed fields (yuan, local times in Asia/Shanghai, comma lists)
to the service's :class:`~citywallet.campaign.service.CampaignSpec`. Only parsing lives
here; the campaign's rules (the plan adds up to the budget, the windows' order, the bank
account, MCCs …) are the service's, and its refusals are shown next to their fields."""

from __future__ import annotations

from datetime import datetime

from citywallet.campaign.rules import Eligibility
from citywallet.campaign.service import CampaignSpec
from citywallet.money import Money, MoneyError
from citywallet.platform.errors import InvalidInput
from citywallet.web.templating import TIMEZONE

PRIZE_ROWS = 3
TIME_FIELDS = ("registration_opens_at", "registration_closes_at", "draw_at", "valid_from",
               "valid_until")  # fmt: skip
# the service's refusals → the field they are shown next to
FIELD_OF_CODE = {
    "invalid_name": "name",
    "invalid_funder_name": "funder_name",
    "invalid_bank_account": "funder_bank_account",
    "invalid_card_number": "funder_bank_account",
    "budget_mismatch": "budget",
    "invalid_prizes": "prize_amount_1",
    "windows_out_of_order": "windows",
    "invalid_mcc": "mccs",
    "invalid_min_spend": "min_spend",
    "invalid_eligibility": "min_tier",
}


class FieldInvalid(InvalidInput):
    """A field that cannot be read (not an amount, not a time …); ``field`` names it."""

    def __init__(self, detail: str, *, field: str, code: str) -> None:
        super().__init__(detail, code=code)
        self.field = field


def _amount(fields: dict[str, str], name: str, *, required: bool = True) -> int:
    text = fields.get(name, "").strip()
    if not text and not required:
        return 0
    try:
        value = Money.parse(text).amount
    except MoneyError:
        raise FieldInvalid(
            "Type an amount in yuan, such as 200 or 66.50.", field=name, code="invalid_amount"
        ) from None
    if value <= 0 and required:
        raise FieldInvalid("The amount must be more than zero.", field=name, code="invalid_amount")
    return value


def _count(fields: dict[str, str], name: str) -> int:
    text = fields.get(name, "").strip()
    if not text.isdigit() or int(text) <= 0 or int(text) > 10_000_000:
        raise FieldInvalid("Type a whole number of packets.", field=name, code="invalid_count")
    return int(text)


def _moment(fields: dict[str, str], name: str) -> int:
    text = fields.get(name, "").strip()
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise FieldInvalid("Pick a date and time.", field=name, code="invalid_time") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=TIMEZONE)
    return int(local.timestamp()) * 1_000_000 + local.microsecond


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.replace("，", ",").split(",") if w.strip())


def parse_campaign(fields: dict[str, str]) -> CampaignSpec:
    """The spec the form describes; an unreadable field raises :class:`FieldInvalid`."""
    prizes: list[tuple[int, int]] = []
    for row in range(1, PRIZE_ROWS + 1):
        amount, count = f"prize_amount_{row}", f"prize_count_{row}"
        if not fields.get(amount, "").strip() and not fields.get(count, "").strip():
            continue
        prizes.append((_amount(fields, amount), _count(fields, count)))
    tier = fields.get("min_tier", "1").strip()
    if tier not in ("1", "2", "3"):
        raise FieldInvalid("The minimum tier is 1, 2 or 3.", field="min_tier",
                           code="invalid_eligibility")  # fmt: skip
    attributes: dict[str, str] = {}
    for pair in _words(fields.get("attributes", "")):
        key, _, value = pair.partition("=")
        if not key.strip() or not value.strip():
            raise FieldInvalid("Write conditions as name=value, separated by commas.",
                               field="attributes", code="invalid_eligibility")  # fmt: skip
        attributes[key.strip()] = value.strip()
    times = {name: _moment(fields, name) for name in TIME_FIELDS}
    return CampaignSpec(
        name=fields.get("name", ""),
        description=fields.get("description", ""),
        funder_name=fields.get("funder_name", ""),
        funder_bank_account=fields.get("funder_bank_account", "").replace(" ", ""),
        budget=_amount(fields, "budget"),
        prizes=prizes,
        registration_opens_at=times["registration_opens_at"],
        registration_closes_at=times["registration_closes_at"],
        draw_at=times["draw_at"],
        valid_from=times["valid_from"],
        valid_until=times["valid_until"],
        eligibility=Eligibility(
            min_tier=int(tier),
            districts=_words(fields.get("eligible_districts", "")),
            attributes=attributes,
        ),
        merchant_ids=_words(fields.get("merchant_ids", "")),
        districts=_words(fields.get("districts", "")),
        mccs=_words(fields.get("mccs", "")),
        min_spend=_amount(fields, "min_spend", required=False),
    )
