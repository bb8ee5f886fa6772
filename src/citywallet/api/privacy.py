"""Residents' privacy API: the legal documents, consents per purpose (PIPL), and "download
my data".

Thin: parse, authenticate, call one service, shape the answer. See docs/identity.md,
"Consent" and "Download my data".
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from citywallet.api import problems
from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.identity import consent
from citywallet.identity.consent_schemas import (
    ConsentPublic,
    ConsentRecordPublic,
    ConsentsPublic,
    ConsentUpdate,
    DocumentName,
    DocumentPublic,
    DocumentSummary,
)
from citywallet.platform import csvfile
from citywallet.platform.db import UnitOfWork
from citywallet.wallet import mydata

router = APIRouter(prefix="/v1", tags=["privacy"])


@router.get("/legal/documents")
def list_documents() -> list[DocumentSummary]:
    """The service agreement and the privacy policy: current version, every version, titles
    (public: shown before sign-up)."""
    return [
        DocumentSummary(
            name=name,
            version=version,
            versions=consent.versions(name),
            title_zh=consent.document(name, "zh_CN").title,
            title_en=consent.document(name, "en").title,
        )
        for name, version in consent.current_versions().items()
    ]


@router.get("/legal/documents/{name}", responses=problems.responses(404))
def get_document(
    name: DocumentName,
    lang: Annotated[Literal["zh_CN", "en"], Query()] = "zh_CN",
    version: Annotated[str | None, Query(max_length=16, pattern=r"^[0-9]+$")] = None,
) -> DocumentPublic:
    """One document's text (Markdown) in Chinese or English; the current version unless
    ``version`` names an older one (404 ``document_not_found``)."""
    return DocumentPublic.of(consent.document(name, lang, version))


@router.get("/me/consents")
def list_consents(auth: CurrentUser, runtime: RuntimeDep) -> ConsentsPublic:
    """Each purpose's consent (``wallet`` required, ``offers`` and ``merchant_sharing``
    optional) with the versions and time, and every change."""
    with runtime.db.uow(readonly=True) as uow:
        items = consent.list_consents(uow, user_id=auth.user_id)
        history = consent.consent_history(uow, user_id=auth.user_id)
    return ConsentsPublic(
        items=[ConsentPublic.of(v) for v in items],
        history=[ConsentRecordPublic.of(r) for r in history],
    )


@router.put("/me/consents")
def update_consent(body: ConsentUpdate, auth: CurrentUser, runtime: RuntimeDep) -> ConsentPublic:
    """Give or withdraw an optional purpose under the current documents (recorded with the
    time and audited); withdrawing ``wallet`` is refused (422 ``consent_required``)."""

    def work(uow: UnitOfWork) -> consent.ConsentView:
        return consent.set_consent(
            uow, user_id=auth.user_id, purpose=body.purpose, granted=body.granted, source="api"
        )

    return ConsentPublic.of(runtime.db.transact(work))


@router.get(
    "/me/export",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}},
            "description": "The resident's data (JSON, or CSV with a UTF-8 BOM).",
        }
    },
)
def export_my_data(
    auth: CurrentUser,
    runtime: RuntimeDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    headers: Annotated[Literal["en", "zh"], Query(description="CSV header language.")] = "en",
) -> Response:
    """Download my data: profile, cards (masked), transactions with their ledger transfer
    ids, consents and devices — the signed-in resident's own only."""
    with runtime.db.uow(readonly=True) as uow:
        data = mydata.export(uow, user_id=auth.user_id, thresholds=runtime.settings.tier_checks)
    return _file(data, format, headers, auth.user_id)


def _file(data: mydata.MyData, fmt: str, headers: str, user_id: str) -> Response:
    if fmt == "csv":
        return Response(
            mydata.to_csv(data, headers=csvfile.header_lang(headers)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="citywallet-{user_id}.csv"'},
        )
    return Response(
        mydata.to_json(data),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="citywallet-{user_id}.json"'},
    )
