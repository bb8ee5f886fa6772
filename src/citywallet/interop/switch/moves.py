"""The switch's part in moving a resident between cells: it relays the package and the
answer, and lets the old cell hand the resident's alias over once the new cell accepted.

``POST /moves`` from the old cell: the package must name its sender as ``fromFsp`` (3100
otherwise) and an active participant as ``toFsp`` (3201); it is stored by id and digest (a
resend relays nothing more, another body under the same id is 3106) and relayed, signed by
the switch, to the new cell. ``PUT /moves/{id}[/error]`` from the new cell is relayed back
once; the relayed package's outbox row is then scrubbed (it carried personal data). An
accepted move is what :func:`citywallet.interop.switch.registry.register_alias` checks
before it lets the old cell name the new one as the alias's holder.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select

from citywallet.interop.messages import ErrorCode, ErrorMessage, error
from citywallet.interop.moves import MoveAnswer, MovePackage
from citywallet.interop.switch import registry
from citywallet.interop.switch.models import Move
from citywallet.interop.switch.service import micros, send_to
from citywallet.interop.transport import scrub
from citywallet.platform.db import UnitOfWork
from citywallet.platform.logging import get_logger

log = get_logger(__name__)


def relay_package(uow: UnitOfWork, *, source: str, package: MovePackage, now: datetime) -> None:
    """``POST /moves``: check the sender and the receiver, store, relay once."""
    path = f"/moves/{package.move_id}/error"
    if package.from_fsp != source:
        send_to(uow, source, "PUT", path, error(ErrorCode.GENERIC_VALIDATION_ERROR, "fromFsp"))
        return
    if not registry.is_active(uow, package.to_fsp):
        send_to(uow, source, "PUT", path, error(ErrorCode.DESTINATION_FSP_ERROR))
        return
    digest = hashlib.sha256(package.wire()).hexdigest()
    row = uow.session.execute(
        select(Move).where(Move.move_id == package.move_id).with_for_update()
    ).scalar_one_or_none()
    if row is not None:
        if row.digest != digest or row.source != source:
            send_to(uow, source, "PUT", path, error(ErrorCode.MODIFIED_REQUEST))
        return
    moment = micros(now)
    row = Move(
        move_id=package.move_id, source=source, destination=package.to_fsp,
        identifier=package.profile.phone, digest=digest, state="RELAYED",
        created_at=moment, updated_at=moment,
    )  # fmt: skip
    uow.session.add(row)
    uow.session.flush()
    row.outbox_id = send_to(uow, package.to_fsp, "POST", "/moves", package)
    uow.session.flush()


def relay_answer(
    uow: UnitOfWork,
    *,
    source: str,
    move_id: str,
    answer: MoveAnswer | None,
    refusal: ErrorMessage | None,
    now: datetime,
) -> None:
    """``PUT /moves/{id}[/error]`` from the new cell: relay it to the old cell, once."""
    row = uow.session.execute(
        select(Move).where(Move.move_id == move_id).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.destination != source:
        log.info("move answer from a stranger ignored", move_id=move_id, source=source)
        return
    if row.state != "RELAYED":
        return  # a duplicate: relayed once already
    row.state = "ACCEPTED" if answer is not None else "REFUSED"
    row.updated_at = micros(now)
    if row.outbox_id is not None:
        scrub(uow, row.outbox_id)
    uow.session.flush()
    if answer is not None:
        send_to(uow, row.source, "PUT", f"/moves/{move_id}", answer)
    else:
        assert refusal is not None
        send_to(uow, row.source, "PUT", f"/moves/{move_id}/error", refusal)
