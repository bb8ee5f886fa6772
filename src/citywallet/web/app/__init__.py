"""The residents' wallet (``/app``): one router per part, all included by
:func:`citywallet.web.install`."""

from __future__ import annotations

from citywallet.web.app import account, interop, money, passkeys, pay, social

routers = [
    account.router,
    interop.router,
    money.router,
    passkeys.router,
    pay.router,
    social.router,
]
