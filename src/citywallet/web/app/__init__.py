"""The residents' wallet (``/app``): one router per part, all included by
:func:`citywallet.web.install`."""

from __future__ import annotations

from citywallet.web.app import (
    account,
    inbox,
    interop,
    money,
    passkeys,
    pay,
    privacy,
    receive,
    recover,
    social,
)

routers = [
    account.router,
    inbox.router,
    interop.router,
    money.router,
    passkeys.router,
    pay.router,
    privacy.router,
    receive.router,
    recover.router,
    social.router,
]
