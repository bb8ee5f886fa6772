"""Consent under PIPL: the versioned service agreement and privacy policy, and each
resident's consent per purpose, recorded with its time and the documents' versions.

Purposes (:data:`PURPOSES`): ``wallet`` (the wallet itself: required, given at sign-up, not
withdrawable short of closing the wallet), ``offers`` (personalised offers) and
``merchant_sharing`` (sharing masked contact data with merchants one pays): optional, given
or withdrawn at any time. Records are append-only (``identity_consents``): the latest row of
a purpose is its state; every change is also on the account's audit trail
(``identity_user_events``: ``consent_given`` / ``consent_withdrawn``).

The documents are Markdown files beside this module, ``legal/<document>.v<N>.<lang>.md``;
the highest version present is the current one. A sign-up must name the current versions
(``consent_outdated`` otherwise), so nobody agrees to a text they were not shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.identity.models import User
from citywallet.identity.queries import add_event, user_row
from citywallet.platform.clock import now_us
from citywallet.platform.db import Base, BigId, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, NotFound

LEGAL = Path(__file__).parent / "legal"
DOCUMENTS = ("service_agreement", "privacy_policy")
LANGS = ("zh_CN", "en")
REQUIRED = "wallet"
PURPOSES = ("wallet", "offers", "merchant_sharing")
OPTIONAL = frozenset(PURPOSES) - {REQUIRED}
SOURCES = ("signup", "settings", "api")
_FILE = re.compile(r"^(?P<doc>[a-z_]+)\.v(?P<version>\d+)\.(?P<lang>zh_CN|en)\.md$")


class Consent(Base):
    """One consent given or withdrawn (append-only)."""

    __tablename__ = "identity_consents"
    __table_args__ = (Index("ix_identity_consents_user", "user_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    agreement_version: Mapped[str] = mapped_column(String(16))
    privacy_version: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


# --- the documents (pure: files only) -----------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One version of a document in one language."""

    name: str
    version: str
    lang: str
    title: str
    text: str  # Markdown


@cache
def _versions() -> dict[str, list[int]]:
    found: dict[str, set[int]] = {name: set() for name in DOCUMENTS}
    for path in LEGAL.glob("*.md"):
        match = _FILE.match(path.name)
        if match and match["doc"] in found:
            found[match["doc"]].add(int(match["version"]))
    return {name: sorted(versions) for name, versions in found.items()}


def versions(name: str) -> list[str]:
    """Every version of document ``name`` there is, oldest first."""
    if name not in DOCUMENTS:
        raise NotFound("No such document.", code="document_not_found")
    return [str(v) for v in _versions()[name]]


def current_versions() -> dict[str, str]:
    """The current version of each document (``{"service_agreement": "1", …}``)."""
    return {name: versions(name)[-1] for name in DOCUMENTS}


@cache
def document(name: str, lang: str = "zh_CN", version: str | None = None) -> Document:
    """Document ``name`` in ``lang`` (Chinese unless English is asked for), at ``version``
    (the current one by default); unknown names and versions are 404 ``document_not_found``."""
    chosen = version or versions(name)[-1]
    language = "en" if lang.startswith("en") else "zh_CN"
    path = LEGAL / f"{name}.v{chosen}.{language}.md"
    if chosen not in versions(name) or not path.is_file():
        raise NotFound("No such document or version.", code="document_not_found")
    text = path.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip()
    return Document(name, chosen, language, title, text)


# --- consents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupConsent:
    """What a resident accepted at sign-up: the versions shown, and the optional purposes."""

    agreement_version: str
    privacy_version: str
    purposes: frozenset[str]


@dataclass(frozen=True)
class ConsentView:
    """A purpose's consent as it stands (``granted`` False: withdrawn or never given)."""

    purpose: str
    required: bool
    granted: bool
    agreement_version: str | None
    privacy_version: str | None
    updated_at: int | None
    source: str | None


@dataclass(frozen=True)
class ConsentRecord:
    """One row of a resident's consent history."""

    purpose: str
    granted: bool
    agreement_version: str
    privacy_version: str
    source: str
    created_at: int


def check_signup(consent: SignupConsent | None) -> SignupConsent:
    """Refuse a sign-up without the wallet's consent (422 ``consent_required``), with an
    unknown purpose (422 ``invalid_consent``) or for documents that are not the current
    ones (409 ``consent_outdated``)."""
    if consent is None or REQUIRED not in consent.purposes:
        raise InvalidInput(
            "Agree to the service agreement and the privacy policy to open a wallet.",
            code="consent_required",
        )
    unknown = sorted(consent.purposes - set(PURPOSES))
    if unknown:
        raise InvalidInput(
            f"Unknown consent purposes: {', '.join(unknown)}.", code="invalid_consent"
        )
    current = current_versions()
    shown = {
        "service_agreement": consent.agreement_version,
        "privacy_policy": consent.privacy_version,
    }
    if shown != current:
        raise Conflict(
            "The agreement or the privacy policy has a newer version; read it and agree again.",
            code="consent_outdated",
            current_versions=current,
        )
    return consent


def record_signup(uow: UnitOfWork, *, user: User, consent: SignupConsent, source: str) -> None:
    """Record the consents of a new account (in the sign-up's transaction): every purpose,
    given or not, so the record shows what was offered."""
    for purpose in PURPOSES:
        _append(uow, user, purpose, purpose in consent.purposes, consent, source)


def _append(
    uow: UnitOfWork, user: User, purpose: str, granted: bool, versions: SignupConsent, source: str
) -> None:
    uow.session.add(
        Consent(
            user_id=user.id,
            purpose=purpose,
            granted=granted,
            agreement_version=versions.agreement_version,
            privacy_version=versions.privacy_version,
            source=source,
            created_at=now_us(),
        )
    )
    add_event(
        uow,
        user,
        "consent_given" if granted else "consent_withdrawn",
        purpose=purpose,
        agreement_version=versions.agreement_version,
        privacy_version=versions.privacy_version,
        source=source,
    )
    uow.session.flush()


def _rows(uow: UnitOfWork, user: User) -> list[Consent]:
    return list(
        uow.session.scalars(select(Consent).where(Consent.user_id == user.id).order_by(Consent.id))
    )


def list_consents(uow: UnitOfWork, *, user_id: str) -> list[ConsentView]:
    """Each purpose's consent as it stands now, in :data:`PURPOSES` order."""
    latest: dict[str, Consent] = {}
    for row in _rows(uow, user_row(uow, user_id)):
        latest[row.purpose] = row
    views = []
    for purpose in PURPOSES:
        last = latest.get(purpose)
        views.append(
            ConsentView(
                purpose=purpose,
                required=purpose == REQUIRED,
                granted=bool(last and last.granted),
                agreement_version=last.agreement_version if last else None,
                privacy_version=last.privacy_version if last else None,
                updated_at=last.created_at if last else None,
                source=last.source if last else None,
            )
        )
    return views


def consent_history(uow: UnitOfWork, *, user_id: str) -> list[ConsentRecord]:
    """Every consent given or withdrawn, oldest first."""
    return [
        ConsentRecord(r.purpose, r.granted, r.agreement_version, r.privacy_version, r.source,
                      r.created_at)
        for r in _rows(uow, user_row(uow, user_id))
    ]  # fmt: skip


def set_consent(
    uow: UnitOfWork, *, user_id: str, purpose: str, granted: bool, source: str
) -> ConsentView:
    """Give or withdraw an optional purpose (under the current documents); the wallet's own
    consent cannot be withdrawn here (422 ``consent_required``: close the wallet instead). An
    unchanged state records nothing."""
    if purpose not in PURPOSES:
        raise NotFound("No such consent purpose.", code="consent_purpose_not_found")
    if purpose == REQUIRED and not granted:
        raise InvalidInput(
            "The wallet cannot work without this consent; close the wallet to withdraw it.",
            code="consent_required",
        )
    user = user_row(uow, user_id)
    state = {v.purpose: v for v in list_consents(uow, user_id=user_id)}[purpose]
    current = current_versions()
    unchanged = state.granted == granted and (
        not granted or state.privacy_version == current["privacy_policy"]
    )
    if not unchanged:
        versions = SignupConsent(
            current["service_agreement"], current["privacy_policy"], frozenset()
        )
        _append(uow, user, purpose, granted, versions, source)
    return {v.purpose: v for v in list_consents(uow, user_id=user_id)}[purpose]


def has_consent(uow: UnitOfWork, *, user_id: str, purpose: str) -> bool:
    """Whether ``purpose`` is consented to now (for features that use the optional ones)."""
    return any(v.granted for v in list_consents(uow, user_id=user_id) if v.purpose == purpose)


def signup_body(purposes: tuple[str, ...] = (REQUIRED,)) -> dict[str, object]:
    """The ``consent`` member of a ``POST /v1/auth/register`` body for the current documents
    (for the demo, the cells launcher and tests, which sign up through the API)."""
    current = current_versions()
    return {
        "agreement_version": current["service_agreement"],
        "privacy_version": current["privacy_policy"],
        "purposes": list(purposes),
    }
