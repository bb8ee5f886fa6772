"""The operator audit log: every operator action (freeze, unfreeze, merchant reviews, each
campaign step, ledger verification) with who did it, what, to which object, why and when.

An action's entry is written with :func:`record` in the same transaction as the action
itself, so there is never an action without its entry nor an entry for an action that
rolled back. Entries are never updated or deleted. ``detail`` holds no personal data
(masked values at most).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Index, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.identity.queries import user_row
from citywallet.platform.clock import now_us
from citywallet.platform.db import Base, BigId, UnitOfWork

MAX_PAGE = 200

# The actions the console records (``action`` column), by the object they act on.
ACTIONS: dict[str, str] = {
    "resident.freeze": "resident",
    "resident.unfreeze": "resident",
    "resident.attributes": "resident",
    "resident.propose": "resident",  # dual control (citywallet.control)
    "resident.approve": "resident",
    "resident.reject": "resident",
    "merchant.approve": "merchant",
    "merchant.reject": "merchant",
    "merchant.suspend": "merchant",
    "merchant.reactivate": "merchant",
    "campaign.create": "campaign",
    "campaign.fund": "campaign",
    "campaign.open": "campaign",
    "campaign.close": "campaign",
    "campaign.draw": "campaign",
    "campaign.issue": "campaign",
    "campaign.reclaim": "campaign",
    "campaign.propose": "campaign",
    "campaign.approve": "campaign",
    "campaign.reject": "campaign",
    "ledger.verify": "ledger",
    "switch.participant": "participant",
    "switch.cap": "participant",
    "switch.deactivate": "participant",
    "switch.close_window": "window",
}


class OperatorAction(Base):
    """One operator action (append-only)."""

    __tablename__ = "identity_operator_audit"
    __table_args__ = (
        Index("ix_identity_operator_audit_action", "action", "id"),
        Index("ix_identity_operator_audit_target", "target_id", "id"),
        Index("ix_identity_operator_audit_actor", "actor_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor_user_id: Mapped[str] = mapped_column(String(40))  # the operator's usr_…
    actor_label: Mapped[str] = mapped_column(String(64))  # masked phone, for reading
    action: Mapped[str] = mapped_column(String(40))
    target_kind: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class AuditEntry:
    """An entry as the console lists it."""

    id: int
    actor_user_id: str
    actor_label: str
    action: str
    target_kind: str
    target_id: str
    reason: str
    detail: str
    created_at: int


@dataclass(frozen=True)
class Actor:
    """The operator acting (public id and a masked label)."""

    user_id: str
    label: str

    @property
    def ref(self) -> str:
        """How services name the actor in their own logs (``operator:usr_…``)."""
        return f"operator:{self.user_id}"


def actor_of(uow: UnitOfWork, user_id: str) -> Actor:
    """The operator ``user_id`` as the log names them (public id and masked phone)."""
    return Actor(user_id, user_row(uow, user_id).phone_masked)


def record(
    uow: UnitOfWork,
    *,
    actor: Actor,
    action: str,
    target_id: str,
    reason: str = "",
    detail: str = "",
) -> None:
    """Append the entry of an action (call it inside the action's own transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audited action {action!r}")
    uow.session.add(
        OperatorAction(
            actor_user_id=actor.user_id,
            actor_label=actor.label[:64],
            action=action,
            target_kind=ACTIONS[action],
            target_id=target_id[:64],
            reason=reason.strip()[:500],
            detail=detail[:2000],
            created_at=now_us(),
        )
    )
    uow.session.flush()


def list_entries(
    uow: UnitOfWork,
    *,
    action: str | None = None,
    target_id: str | None = None,
    actor_user_id: str | None = None,
    before: int | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
) -> tuple[list[AuditEntry], int | None]:
    """Entries newest first, filtered (``since`` ≤ ``created_at`` < ``until``, microseconds);
    returns a page and the cursor of the next one."""
    limit = max(1, min(limit, MAX_PAGE))
    query = _filtered(action, target_id, actor_user_id, since, until)
    query = query.order_by(OperatorAction.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(OperatorAction.id < before)
    rows = list(uow.session.scalars(query))
    page = rows[:limit]
    return [_entry(r) for r in page], (page[-1].id if len(rows) > limit else None)


def _entry(r: OperatorAction) -> AuditEntry:
    return AuditEntry(
        id=r.id,
        actor_user_id=r.actor_user_id,
        actor_label=r.actor_label,
        action=r.action,
        target_kind=r.target_kind,
        target_id=r.target_id,
        reason=r.reason,
        detail=r.detail,
        created_at=r.created_at,
    )


def export_entries(
    uow: UnitOfWork,
    *,
    action: str | None = None,
    target_id: str | None = None,
    actor_user_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100_000,
) -> list[AuditEntry]:
    """Every entry the filters select, oldest first (for the CSV export), at most ``limit``."""
    query = _filtered(action, target_id, actor_user_id, since, until)
    query = query.order_by(OperatorAction.id).limit(limit)
    return [_entry(r) for r in uow.session.scalars(query)]


def _filtered(
    action: str | None,
    target_id: str | None,
    actor_user_id: str | None,
    since: int | None,
    until: int | None,
) -> Select[OperatorAction]:
    query = select(OperatorAction)
    if since is not None:
        query = query.where(OperatorAction.created_at >= since)
    if until is not None:
        query = query.where(OperatorAction.created_at < until)
    if action:
        if action.endswith("."):
            query = query.where(OperatorAction.action.startswith(action))
        else:
            query = query.where(OperatorAction.action == action)
    if target_id:
        query = query.where(OperatorAction.target_id == target_id.strip())
    if actor_user_id:
        query = query.where(OperatorAction.actor_user_id == actor_user_id.strip())
    return query
