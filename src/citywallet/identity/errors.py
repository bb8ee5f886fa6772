"""Identity's refusals, with the stable codes clients switch on (see docs/identity.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, DomainError, Forbidden, NotFound


class UserNotFound(NotFound):
    """No such user (or not yours)."""

    code = "user_not_found"


class AccountFrozen(Forbidden):
    """An operator froze the account: no logins, no money movement."""

    code = "account_frozen"
    title = "Account frozen"


class AccountClosed(Forbidden):
    """The owner closed the account: no logins, no money movement, for good."""

    code = "account_closed"
    title = "Account closed"


class AccountMoved(Forbidden):
    """The wallet moved to another cell of this deployment: sign in there (``cell``)."""

    code = "account_moved"
    title = "Wallet moved"


class PinNotSet(Conflict):
    """The user has no payment PIN yet."""

    code = "pin_not_set"
    title = "Payment PIN not set"


class PinIncorrect(Forbidden):
    """Wrong payment PIN; ``attempts_left`` before the lock."""

    code = "pin_incorrect"
    title = "Wrong payment PIN"

    def __init__(self, detail: str, *, attempts_left: int) -> None:
        super().__init__(detail, attempts_left=attempts_left)
        self.attempts_left = attempts_left


class PinLocked(DomainError):
    """Too many wrong PINs: locked for ``retry_after`` seconds (answered with Retry-After)."""

    code = "pin_locked"
    status = 423
    title = "Payment PIN locked"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class IdentityServiceUnavailable(DomainError):
    """The real-name verification service did not answer; nothing was recorded."""

    code = "identity_service_unavailable"
    status = 503
    title = "Identity verification unavailable"

    def __init__(self, detail: str, *, retry_after: int = 30) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
