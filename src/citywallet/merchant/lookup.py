"""Finding one of a merchant's rows and bounding a page: the shape every ``…_row`` lookup
and every newest-first list of the merchant package shares."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select

from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError

T = TypeVar("T")
MAX_PAGE = 100


def one_row(
    uow: UnitOfWork, query: Select[T], missing: DomainError, *, for_update: bool = False
) -> T:
    """The row ``query`` finds, else ``missing`` is raised; with ``for_update`` the row is
    locked and re-read (so a copy already in the session cannot be stale)."""
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = uow.session.scalar(query)
    if row is None:
        raise missing
    return row


def page_limit(limit: int) -> int:
    """``limit`` bounded to 1…``MAX_PAGE``."""
    return max(1, min(limit, MAX_PAGE))
