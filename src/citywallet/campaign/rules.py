"""Pure campaign rules: the plan (budget = Σ denomination × count), the windows, who may
register. No database, no clock (callers pass the moment): unit-tested on its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citywallet.platform.errors import InvalidInput

MAX_PRIZES = 10_000_000  # packets in one campaign
MAX_DENOMINATIONS = 20


@dataclass(frozen=True)
class Eligibility:
    """Who may register: a verified real name (always, for the one-per-person rule), at
    least ``min_tier``, living in one of ``districts`` (empty: anywhere), and holding every
    attribute of ``attributes`` with that value (``{"social_insurance": "shenzhen"}``)."""

    min_tier: int = 1
    districts: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The stored and published form."""
        return {
            "min_tier": self.min_tier,
            "districts": list(self.districts),
            "attributes": dict(sorted(self.attributes.items())),
        }

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Eligibility:
        """The rule from its stored form."""
        return cls(
            min_tier=int(data.get("min_tier", 1)),
            districts=tuple(data.get("districts", ())),
            attributes=dict(data.get("attributes", {})),
        )


@dataclass(frozen=True)
class Applicant:
    """What eligibility looks at: the resident, their verified identity and attributes
    (``district`` is the attribute named so)."""

    user_id: str
    id_hash: str | None  # None: no verified real name
    tier: int
    status: str
    attributes: Mapping[str, str]


def refusal(rule: Eligibility, applicant: Applicant) -> str | None:
    """Why ``applicant`` may not register (a stable code), or None if they may."""
    if applicant.status != "active":
        return "account_not_active"
    if applicant.id_hash is None:
        return "real_name_required"
    if applicant.tier < rule.min_tier:
        return "tier_too_low"
    if rule.districts and applicant.attributes.get("district") not in rule.districts:
        return "district_not_eligible"
    for name, value in rule.attributes.items():
        if applicant.attributes.get(name) != value:
            return "attribute_not_eligible"
    return None


def prize_list(plan: Sequence[tuple[int, int]]) -> list[int]:
    """Every packet's amount, largest first (the lottery's order of prizes)."""
    return [amount for amount, count in sorted(plan, reverse=True) for _ in range(count)]


def validate_plan(budget: int, plan: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Check denominations × counts = budget; returns the plan merged, largest first."""
    if not plan or len(plan) > MAX_DENOMINATIONS:
        raise InvalidInput(
            f"Give 1 to {MAX_DENOMINATIONS} denominations with their counts.",
            code="invalid_prizes",
        )
    merged: dict[int, int] = {}
    for amount, count in plan:
        if amount <= 0 or count <= 0:
            raise InvalidInput(
                "Each denomination and count is a positive whole number (fen).",
                code="invalid_prizes",
            )
        merged[amount] = merged.get(amount, 0) + count
    total_count = sum(merged.values())
    if total_count > MAX_PRIZES:
        raise InvalidInput(f"At most {MAX_PRIZES:,} packets.", code="invalid_prizes")
    total = sum(amount * count for amount, count in merged.items())
    if total != budget:
        raise InvalidInput(
            f"The packets add up to {total} fen, not the budget of {budget} fen.",
            code="budget_mismatch",
            packets_total=total,
        )
    return sorted(merged.items(), reverse=True)


def validate_windows(
    *,
    registration_opens_at: int,
    registration_closes_at: int,
    draw_at: int,
    valid_from: int,
    valid_until: int,
) -> None:
    """Registration opens before it closes, the draw follows it, spending follows the draw
    and ends after it starts."""
    if not registration_opens_at < registration_closes_at:
        raise InvalidInput("Registration must open before it closes.", code="windows_out_of_order")
    if not registration_closes_at <= draw_at:
        raise InvalidInput("The draw comes after registration closes.", code="windows_out_of_order")
    if not draw_at <= valid_from < valid_until:
        raise InvalidInput(
            "Red packets become valid after the draw, and their validity ends after it starts.",
            code="windows_out_of_order",
        )
