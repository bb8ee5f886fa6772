"""The residents' wallet (``/app``): one router per part, all included by
:func:`citywallet.web.install`."""

from __future__ import annotations

from citywallet.web.app import account, interop, money, pay, privacy, social

routers = [
    account.router,
    interop.router,
    money.router,
    pay.router,
    privacy.router,
    social.router,
]
