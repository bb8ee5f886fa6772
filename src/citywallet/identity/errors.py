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


class PasskeyInvalid(Forbidden):
    """A passkey assertion or registration that does not verify (bad signature, another
    site, no user verification, unknown or removed credential)."""

    code = "passkey_invalid"
    title = "Passkey not accepted"


class PasskeyChallengeInvalid(Forbidden):
    """The assertion answers no live challenge: unknown, expired, or used already (a
    replayed assertion)."""

    code = "passkey_challenge_invalid"
    title = "Passkey challenge expired or used"


class PasskeyIntentMismatch(Forbidden):
    """The assertion confirmed another payment (payee, amount or order): refused, nothing
    moved."""

    code = "passkey_intent_mismatch"
    title = "Passkey confirmed another payment"


class PasskeyNotFound(NotFound):
    """No such passkey (or not yours)."""

    code = "passkey_not_found"


class StepUpRequired(Forbidden):
    """This payment needs a second factor besides the PIN: ``factors`` lists the accepted
    ones (``passkey``, ``sms``) and ``reasons`` why (``amount``, ``new_payee``,
    ``new_device``)."""

    code = "step_up_required"
    title = "Second factor required"

    def __init__(self, detail: str, *, factors: list[str], reasons: list[str]) -> None:
        super().__init__(detail, factors=factors, reasons=reasons)
        self.factors = factors
        self.reasons = reasons
