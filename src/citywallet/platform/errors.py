"""Domain errors with stable machine codes, mapped to RFC 9457 problem+json at the edge."""

from __future__ import annotations

from typing import Any

# The members of every problem+json body (RFC 9457 plus our ``code`` and the validation
# ``errors``). An error's extra data sits beside them, so it may never take one of these
# names: ``MerchantNotActive(status=…)`` once turned every refusal into a 500.
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "code", "errors"})


class DomainError(Exception):
    """A business rule said no. ``code`` is stable and documented; ``status`` is the HTTP status.

    ``extra`` is data the client may use (``retry_after``, ``attempts_left`` …); its names
    must not be members of the problem (``PROBLEM_MEMBERS``), or construction fails.
    """

    code = "domain_error"
    status = 400
    title = "Request refused"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        taken = PROBLEM_MEMBERS.intersection(extra)
        if taken:
            raise TypeError(f"extra data may not be named {', '.join(sorted(taken))}")
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFound(DomainError):
    """The object does not exist, or is not the caller's (both answer 404)."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidInput(DomainError):
    """The request is well-formed but its values are not acceptable."""

    code = "invalid_input"
    status = 422
    title = "Invalid input"


class Unauthorized(DomainError):
    """Missing or bad credentials."""

    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class RateLimited(DomainError):
    """Too many attempts; ``retry_after`` seconds until the next one may succeed."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, retry_after=retry_after)
        self.retry_after = retry_after


class DatabaseUnavailable(DomainError):
    """The database did not answer, or cannot write just now (a failover in progress):
    nothing was done; the same request (with the same Idempotency-Key) may be sent again."""

    code = "database_unavailable"
    status = 503
    title = "Service unavailable"
    retry_after = 1


class AdapterUnavailable(DomainError):
    """An outside service this request needs (SMS, identity, bank) is not configured or
    cannot be loaded; answered before anything is written."""

    code = "adapter_unavailable"
    status = 503
    title = "Service unavailable"
