"""Red-packet groups: a resident creates one, adds and removes members by phone or user id.

The owner is a member (and stays one). Only the owner adds or removes others; any member
may leave. Membership decides who sees the group and who may open its red packets, checked
at the moment of each request: someone removed from a group no longer sees it or its
packets (except those they already claimed). Outsiders get 404, as for any object that is
not theirs. Membership changes lock the group row, so the member limit is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from citywallet.identity.service import get_user
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.cursors import decode_cursor, encode_cursor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.errors import (
    GroupFull,
    GroupNotFound,
    GroupOwnerOnly,
    MemberNotFound,
    OwnerCannotLeave,
)
from citywallet.redpacket.models import RedPacketGroup, RedPacketGroupMember
from citywallet.redpacket.paging import page_limit
from citywallet.wallet.people import active_user, find_recipient, label, new_id

NAME_MAX = 30
CURSOR_TAG = "g1"


@dataclass(frozen=True)
class MemberView:
    """A member as the other members see them (masked name and phone)."""

    user_id: str
    label: str
    role: str  # "owner" | "member"
    added_at: int


@dataclass(frozen=True)
class GroupView:
    """A group as one of its members sees it; ``members`` only on the single-group view."""

    id: str
    name: str
    owner_id: str
    role: str  # the caller's
    member_count: int
    members: list[MemberView] | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class GroupPage:
    """Groups the caller belongs to, newest first; ``next_cursor`` fetches more."""

    items: list[GroupView]
    next_cursor: str | None


def _clean_name(name: str) -> str:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= NAME_MAX:
        raise InvalidInput(
            f"A group name has 1 to {NAME_MAX} characters.", code="invalid_group_name"
        )
    return clean


def member_role(uow: UnitOfWork, *, group_pk: int, user_id: str) -> str | None:
    """The user's role in the group, or ``None`` if they are not a member."""
    role: str | None = uow.session.scalar(
        select(RedPacketGroupMember.role).where(
            RedPacketGroupMember.group_id == group_pk, RedPacketGroupMember.user_id == user_id
        )
    )
    return role


def member_count(uow: UnitOfWork, *, group_pk: int) -> int:
    """How many members the group has, its owner included."""
    counted = uow.session.scalar(
        select(func.count()).where(RedPacketGroupMember.group_id == group_pk)
    )
    return int(counted or 0)


def member_group(
    uow: UnitOfWork, *, user_id: str, group_id: str, for_update: bool = False
) -> tuple[RedPacketGroup, str]:
    """A group the user is a member of, with their role (``redpacket_group_not_found``
    for anyone else)."""
    query = select(RedPacketGroup).where(RedPacketGroup.public_id == group_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    group = uow.session.scalar(query)
    role = None if group is None else member_role(uow, group_pk=group.id, user_id=user_id)
    if group is None or role is None:
        raise GroupNotFound("No such group.")
    return group, role


def _members(uow: UnitOfWork, group_pk: int) -> list[MemberView]:
    rows = uow.session.scalars(
        select(RedPacketGroupMember)
        .where(RedPacketGroupMember.group_id == group_pk)
        .order_by(RedPacketGroupMember.added_at, RedPacketGroupMember.user_id)
    )
    return [
        MemberView(row.user_id, label(get_user(uow, user_id=row.user_id)), row.role, row.added_at)
        for row in rows
    ]


def _view(
    uow: UnitOfWork, group: RedPacketGroup, role: str, *, with_members: bool, count: int | None
) -> GroupView:
    members = _members(uow, group.id) if with_members else None
    if count is None:
        count = len(members) if members is not None else member_count(uow, group_pk=group.id)
    return GroupView(
        id=group.public_id,
        name=group.name,
        owner_id=group.owner_id,
        role=role,
        member_count=count,
        members=members,
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


def _add(
    uow: UnitOfWork,
    group: RedPacketGroup,
    *,
    by: str,
    people: Sequence[str],
    encryptor: Encryptor,
    settings: Settings,
) -> None:
    """Add the people (user ids or phone numbers) who are not members yet, within the limit."""
    wanted: dict[str, None] = {}
    for who in people:
        wanted[find_recipient(uow, who, encryptor).id] = None
    present = set(
        uow.session.scalars(
            select(RedPacketGroupMember.user_id).where(
                RedPacketGroupMember.group_id == group.id,
                RedPacketGroupMember.user_id.in_(list(wanted)),
            )
        )
    )
    new = [user_id for user_id in wanted if user_id not in present]
    if not new:
        return
    room = settings.redpacket_group_max_members - member_count(uow, group_pk=group.id)
    if len(new) > room:
        raise GroupFull(
            f"A group has at most {settings.redpacket_group_max_members} members "
            f"({max(room, 0)} more fit).",
            room=max(room, 0),
        )
    moment = now_us()
    uow.session.add_all(
        RedPacketGroupMember(
            group_id=group.id, user_id=user_id, role="member", added_by=by, added_at=moment
        )
        for user_id in new
    )
    group.updated_at = moment
    uow.session.flush()


def create_group(
    uow: UnitOfWork,
    *,
    user_id: str,
    name: str,
    members: Sequence[str] = (),
    encryptor: Encryptor,
    settings: Settings | None = None,
) -> GroupView:
    """Create a group owned (and joined) by the user, with the people named in ``members``."""
    cfg = settings if settings is not None else get_settings()
    clean = _clean_name(name)
    owner = active_user(uow, user_id)
    moment = now_us()
    group = RedPacketGroup(
        public_id=new_id("rpg"),
        owner_id=owner.id,
        name=clean,
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(group)
    uow.session.flush()
    uow.session.add(
        RedPacketGroupMember(
            group_id=group.id, user_id=owner.id, role="owner", added_by=owner.id, added_at=moment
        )
    )
    uow.session.flush()
    _add(uow, group, by=owner.id, people=members, encryptor=encryptor, settings=cfg)
    return _view(uow, group, "owner", with_members=True, count=None)


def get_group(uow: UnitOfWork, *, user_id: str, group_id: str) -> GroupView:
    """A group the user belongs to, with its members."""
    group, role = member_group(uow, user_id=user_id, group_id=group_id)
    return _view(uow, group, role, with_members=True, count=None)


def list_groups(
    uow: UnitOfWork, *, user_id: str, cursor: str | None = None, limit: int = 20
) -> GroupPage:
    """The groups the user belongs to, newest first (without their member lists)."""
    size = page_limit(limit)
    counts = (
        select(RedPacketGroupMember.group_id, func.count().label("n"))
        .group_by(RedPacketGroupMember.group_id)
        .subquery()
    )
    query = (
        select(RedPacketGroup, RedPacketGroupMember.role, counts.c.n)
        .join(RedPacketGroupMember, RedPacketGroupMember.group_id == RedPacketGroup.id)
        .join(counts, counts.c.group_id == RedPacketGroup.id)
        .where(RedPacketGroupMember.user_id == user_id)
    )
    if cursor is not None:
        query = query.where(RedPacketGroup.id < decode_cursor(CURSOR_TAG, cursor))
    rows = uow.session.execute(query.order_by(RedPacketGroup.id.desc()).limit(size + 1)).all()
    page = rows[:size]
    following = encode_cursor(CURSOR_TAG, page[-1][0].id) if len(rows) > size else None
    return GroupPage(
        [_view(uow, group, role, with_members=False, count=int(n)) for group, role, n in page],
        following,
    )


def add_members(
    uow: UnitOfWork,
    *,
    user_id: str,
    group_id: str,
    members: Sequence[str],
    encryptor: Encryptor,
    settings: Settings | None = None,
) -> GroupView:
    """The owner adds people by user id or phone number (members already in are skipped)."""
    cfg = settings if settings is not None else get_settings()
    group, role = member_group(uow, user_id=user_id, group_id=group_id, for_update=True)
    if role != "owner":
        raise GroupOwnerOnly("Only the group's owner adds members.")
    if not members:
        raise InvalidInput("Name at least one person to add.", code="no_members_given")
    _add(uow, group, by=user_id, people=members, encryptor=encryptor, settings=cfg)
    return _view(uow, group, role, with_members=True, count=None)


def remove_member(uow: UnitOfWork, *, user_id: str, group_id: str, member_id: str) -> None:
    """The owner removes a member, or a member leaves (``member_id`` is themself)."""
    group, role = member_group(uow, user_id=user_id, group_id=group_id, for_update=True)
    if member_id != user_id and role != "owner":
        raise GroupOwnerOnly("Only the group's owner removes other members.")
    if member_id == group.owner_id:
        raise OwnerCannotLeave("The owner stays a member of their group.")
    row = uow.session.get(RedPacketGroupMember, (group.id, member_id))
    if row is None:
        raise MemberNotFound("That person is not a member of this group.")
    uow.session.delete(row)
    group.updated_at = now_us()
    uow.session.flush()
