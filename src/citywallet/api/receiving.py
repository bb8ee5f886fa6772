"""Before a transfer, in the API: whom it would reach (masked real name), recent recipients,
the resident's own receive code (收钱码) and reading a scanned one.

Nothing here moves money: the app shows what these answer, then pays with
``POST /v1/wallet/transfers`` (``to`` = the recipient's ``user_id``, the PIN). See
docs/api.md and docs/wallet.md, "Receive code"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from citywallet.api import problems
from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.wallet import receive_code
from citywallet.wallet import service as wallet
from citywallet.wallet.schemas import (
    ReceiveCodePublic,
    RecentRecipientList,
    RecipientPublic,
    ScannedReceiveCode,
)

router = APIRouter(prefix="/v1/wallet", tags=["wallet"])


@router.get("/transfers/recipient", responses=problems.responses(404, 409))
def transfer_recipient(
    auth: CurrentUser,
    runtime: RuntimeDep,
    to: Annotated[str, Query(min_length=3, max_length=40, description="usr_… or mobile")],
) -> RecipientPublic:
    """Whom a transfer ``to`` would reach: their masked real name, to show before the PIN
    (``recipient_not_found`` 404, ``recipient_unavailable`` 409, ``cannot_pay_self`` 422)."""
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.recipient_preview(
            uow, user_id=auth.user_id, to=to, encryptor=runtime.encryptor
        )
    return RecipientPublic.of(view)


@router.get("/transfers/recent-recipients")
def recent_recipients(
    auth: CurrentUser,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=20)] = 6,
) -> RecentRecipientList:
    """The last distinct people you transferred to, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = wallet.recent_recipients(uow, user_id=auth.user_id, limit=limit)
    return RecentRecipientList.of(views)


@router.get("/receive-code")
def my_receive_code(
    auth: CurrentUser,
    runtime: RuntimeDep,
    amount: Annotated[int | None, Query(gt=0, le=receive_code.MAX_AMOUNT)] = None,
) -> ReceiveCodePublic:
    """Your receive code's payload (show it as a QR), asking for ``amount`` fen if given."""
    with runtime.db.uow(readonly=True) as uow:
        payload = wallet.my_receive_code(uow, user_id=auth.user_id, amount=amount)
    return ReceiveCodePublic(payload=payload, amount=amount)


@router.get("/receive-codes/scanned", responses=problems.responses(404, 409))
def scanned_receive_code(
    auth: CurrentUser,
    runtime: RuntimeDep,
    payload: Annotated[str, Query(min_length=1, max_length=receive_code.MAX_PAYLOAD)],
) -> ScannedReceiveCode:
    """Read a scanned receive code: whom it pays (masked real name) and the amount it asks
    for; broken codes answer 422 (``qr_crc_mismatch``, ``qr_malformed`` …)."""
    code = receive_code.parse(payload)
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.recipient_preview(
            uow, user_id=auth.user_id, to=code.user_id, encryptor=runtime.encryptor
        )
    return ScannedReceiveCode(recipient=RecipientPublic.of(view), amount=code.amount)
