"""Red-packet routes: groups and their members, sending (PIN), claiming, what people see.

Thin adapters: parse, authorise (a group or packet is looked up together with the caller's
right to see it, so an outsider gets 404), call one service, render. Sending and claiming
move money: both require an ``Idempotency-Key`` (:class:`~citywallet.api.idempotency.
Idempotent`); sending also checks the payment PIN, inside that one transaction (a wrong PIN
rolls it back and is counted on its own). A claim runs its checks read only and
then takes its share in the idempotency transaction (docs/redpackets.md, "Grabs").
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.api.idempotency import IdempotencyKeyHeader, Idempotent
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.redpacket.schemas import (
    ClaimCreate,
    ClaimResultPublic,
    GroupCreate,
    GroupList,
    GroupPublic,
    MembersAdd,
    PacketCreate,
    PacketList,
    PacketPublic,
)

router = APIRouter(tags=["red packets"])

Cursor = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=100)]

SEND_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Missing or malformed Idempotency-Key (idempotency_key_required)."},
    403: {"description": "Wrong PIN (pin_incorrect) or frozen account (account_frozen)."},
    404: {"description": "recipient_not_found, redpacket_group_not_found."},
    409: {"description": "insufficient_balance, *_limit_exceeded, recipient_unavailable."},
    422: {
        "description": "packet_too_large, too_many_shares, share_too_small, "
        "redpacket_target_required, invalid_redpacket_kind, idempotency_key_reused."
    },
    423: {"description": "PIN locked (pin_locked), with Retry-After."},
}

CLAIM_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Missing or malformed Idempotency-Key (idempotency_key_required)."},
    403: {"description": "redpacket_not_claimable (not yours to open), account_frozen."},
    404: {"description": "redpacket_not_found (no such packet, or not one you may see)."},
    409: {
        "description": "redpacket_empty (all claimed), redpacket_already_claimed, "
        "redpacket_expired, balance_limit_exceeded (your tier cannot hold the share)."
    },
    422: {"description": "idempotency_key_reused."},
}


# --- groups -------------------------------------------------------------------------------


@router.post("/v1/redpacket-groups", status_code=status.HTTP_201_CREATED)
def create_group(body: GroupCreate, auth: CurrentUser, runtime: RuntimeDep) -> GroupPublic:
    """Create a group you own, adding people by user id or mobile number."""
    view = runtime.db.transact(
        lambda uow: redpacket.create_group(
            uow,
            user_id=auth.user_id,
            name=body.name,
            members=body.members,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    return GroupPublic.of(view)


@router.get("/v1/redpacket-groups")
def list_groups(
    auth: CurrentUser, runtime: RuntimeDep, cursor: Cursor = None, limit: Limit = 20
) -> GroupList:
    """The groups you belong to, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        page = redpacket.list_groups(uow, user_id=auth.user_id, cursor=cursor, limit=limit)
    return GroupList.of(page)


@router.get("/v1/redpacket-groups/{group_id}")
def get_group(group_id: str, auth: CurrentUser, runtime: RuntimeDep) -> GroupPublic:
    """A group you belong to, with its members (else 404 ``redpacket_group_not_found``)."""
    with runtime.db.uow(readonly=True) as uow:
        view = redpacket.get_group(uow, user_id=auth.user_id, group_id=group_id)
    return GroupPublic.of(view)


@router.post("/v1/redpacket-groups/{group_id}/members")
def add_members(
    group_id: str, body: MembersAdd, auth: CurrentUser, runtime: RuntimeDep
) -> GroupPublic:
    """Add people to your group (owner only: 403 ``redpacket_group_owner_only``; 409
    ``redpacket_group_full`` beyond the member limit)."""
    view = runtime.db.transact(
        lambda uow: redpacket.add_members(
            uow,
            user_id=auth.user_id,
            group_id=group_id,
            members=body.members,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    return GroupPublic.of(view)


@router.delete(
    "/v1/redpacket-groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
def remove_member(group_id: str, user_id: str, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """The owner removes a member; a member removes themself to leave the group."""
    runtime.db.transact(
        lambda uow: redpacket.remove_member(
            uow, user_id=auth.user_id, group_id=group_id, member_id=user_id
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/redpacket-groups/{group_id}/redpackets")
def list_group_packets(
    group_id: str,
    auth: CurrentUser,
    runtime: RuntimeDep,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> PacketList:
    """The red packets sent to a group you belong to, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        page = redpacket.list_group_packets(
            uow, user_id=auth.user_id, group_id=group_id, cursor=cursor, limit=limit
        )
    return PacketList.of(page)


# --- packets ------------------------------------------------------------------------------


@router.post(
    "/v1/redpackets",
    status_code=status.HTTP_201_CREATED,
    response_model=PacketPublic,
    responses=SEND_RESPONSES,
)
def send_packet(
    body: PacketCreate,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Send a red packet to one person or to a group you belong to; the money leaves your
    wallet now and what is unclaimed comes back after 24 hours."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    return call.run(
        lambda uow: redpacket.send_packet(
            uow,
            user_id=auth.user_id,
            amount=body.amount,
            currency=body.currency,
            to=body.to,
            group_id=body.group_id,
            kind=body.kind,
            shares=body.shares,
            greeting=body.greeting,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
            pin=body.pin,
        ),
        lambda view: (status.HTTP_201_CREATED, PacketPublic.of(view)),
    )


@router.get("/v1/redpackets")
def list_packets(
    auth: CurrentUser,
    runtime: RuntimeDep,
    role: Literal["sent", "received", "available"] = "sent",
    cursor: Cursor = None,
    limit: Limit = 20,
) -> PacketList:
    """Your red packets: ``sent``, ``received`` (the ones you opened) or ``available``
    (still open to you), newest first."""
    with runtime.db.uow(readonly=True) as uow:
        page = redpacket.list_packets(
            uow, user_id=auth.user_id, role=role, cursor=cursor, limit=limit
        )
    return PacketList.of(page)


@router.get("/v1/redpackets/{packet_id}")
def get_packet(packet_id: str, auth: CurrentUser, runtime: RuntimeDep) -> PacketPublic:
    """A packet you sent, were sent, may open or opened: every claim (who, how much, when),
    the best-luck mark, the status (else 404 ``redpacket_not_found``)."""
    with runtime.db.uow(readonly=True) as uow:
        view = redpacket.get_packet(uow, user_id=auth.user_id, packet_id=packet_id)
    return PacketPublic.of(view)


@router.post(
    "/v1/redpackets/{packet_id}/claims",
    status_code=status.HTTP_201_CREATED,
    response_model=ClaimResultPublic,
    responses=CLAIM_RESPONSES,
)
def claim_packet(
    packet_id: str,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
    body: ClaimCreate | None = None,
) -> Response:
    """Open a red packet: your share moves into your wallet (one claim per person; 409
    ``redpacket_empty`` once every share is taken)."""
    call = Idempotent.of(
        runtime, request, scope=auth.user_id, key=idempotency_key, body=body or ClaimCreate()
    )
    # The checks read only (in autocommit on PostgreSQL), so a refused grab (empty, already
    # claimed, expired) writes nothing; a retry of a claim that succeeded is refused by them
    # and replays instead.
    with redpacket.checking(runtime.db) as uow:
        try:
            ticket = redpacket.check_claim(uow, user_id=auth.user_id, packet_id=packet_id)
        except DomainError:
            replayed = call.stored(uow)
            if replayed is None:
                raise
            return replayed
    return call.run(
        lambda uow: redpacket.take_share(uow, ticket=ticket, settings=runtime.settings),
        lambda result: (status.HTTP_201_CREATED, ClaimResultPublic.of(result)),
    )
