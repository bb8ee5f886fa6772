"""Request and response bodies of consent and the legal documents (docs/identity.md,
"Consent")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from citywallet.identity.consent import ConsentRecord, ConsentView, Document, SignupConsent
from citywallet.platform.clock import to_datetime

Purpose = Literal["wallet", "offers", "merchant_sharing"]
DocumentName = Literal["service_agreement", "privacy_policy"]


class ConsentCreate(BaseModel):
    """What the resident accepted at sign-up: the documents' versions they were shown
    (``GET /v1/legal/documents``) and the purposes; ``wallet`` is required."""

    agreement_version: str = Field(max_length=16, examples=["1"])
    privacy_version: str = Field(max_length=16, examples=["1"])
    purposes: list[Purpose] = Field(
        min_length=1, max_length=3, examples=[["wallet", "offers"]],
        description="'wallet' (required), 'offers', 'merchant_sharing' (optional).",
    )  # fmt: skip

    def to_domain(self) -> SignupConsent:
        """The service's value."""
        return SignupConsent(self.agreement_version, self.privacy_version, frozenset(self.purposes))


class ConsentUpdate(BaseModel):
    """Give or withdraw an optional purpose."""

    purpose: Purpose
    granted: bool


class ConsentPublic(BaseModel):
    """A purpose's consent as it stands."""

    purpose: Purpose
    required: bool
    granted: bool
    agreement_version: str | None
    privacy_version: str | None
    updated_at: datetime | None
    source: str | None

    @classmethod
    def of(cls, view: ConsentView) -> ConsentPublic:
        """From the service's view."""
        return cls(
            purpose=view.purpose,
            required=view.required,
            granted=view.granted,
            agreement_version=view.agreement_version,
            privacy_version=view.privacy_version,
            updated_at=to_datetime(view.updated_at) if view.updated_at else None,
            source=view.source,
        )


class ConsentRecordPublic(BaseModel):
    """One consent given or withdrawn."""

    purpose: Purpose
    granted: bool
    agreement_version: str
    privacy_version: str
    source: str
    created_at: datetime

    @classmethod
    def of(cls, record: ConsentRecord) -> ConsentRecordPublic:
        """From the service's record."""
        return cls(
            purpose=record.purpose,
            granted=record.granted,
            agreement_version=record.agreement_version,
            privacy_version=record.privacy_version,
            source=record.source,
            created_at=to_datetime(record.created_at),
        )


class ConsentsPublic(BaseModel):
    """Each purpose's state and the whole history."""

    items: list[ConsentPublic]
    history: list[ConsentRecordPublic]


class DocumentSummary(BaseModel):
    """A document's current version."""

    name: DocumentName
    version: str
    versions: list[str]
    title_zh: str
    title_en: str


class DocumentPublic(BaseModel):
    """One version of a document in one language (Markdown)."""

    name: DocumentName
    version: str
    lang: Literal["zh_CN", "en"]
    title: str
    text: str

    @classmethod
    def of(cls, doc: Document) -> DocumentPublic:
        """From the document."""
        return cls(
            name=doc.name,
            version=doc.version,
            lang=doc.lang,
            title=doc.title,
            text=doc.text,
        )
