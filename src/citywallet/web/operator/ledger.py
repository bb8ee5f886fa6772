"""Ledger: totals per account kind, the latest blocks, "verify now" (progress and result)
and any transfer by id with its inclusion proof, checked here against the public key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.ledger import overview
from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import NotSealedYet, inclusion_proof
from citywallet.ledger.types import AccountCode, TransferCode
from citywallet.ledger.verifier import ProofError, verify_inclusion_proof
from citywallet.web.operator import verify_runs
from citywallet.web.operator.shared import OperatorDep, actor_of, not_found
from citywallet.web.session import FormFields, runtime_of
from citywallet.web.templating import render

router = APIRouter()


@router.get("/ledger")
def ledger_page(request: Request, _viewer: OperatorDep) -> Response:
    """Totals per account kind, counts, the latest blocks; verify and look up forms."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        totals = overview.totals_by_kind(uow)
        blocks = overview.latest_blocks(uow, limit=10)
        counts = overview.counts(uow)
    return render(request, "operator/ledger.html",
                  {"totals": totals, "blocks": blocks, "counts": counts})  # fmt: skip


@router.post("/ledger/verify")
def verify(request: Request, viewer: OperatorDep, _fields: FormFields) -> Response:
    """Start the ledger verifier; its page shows the progress and the result."""
    run = verify_runs.start(runtime_of(request), actor_of(viewer))
    return RedirectResponse(f"/operator/ledger/verify/{run.id}", status_code=303)


@router.get("/ledger/verify/{run_id}")
def verify_page(request: Request, run_id: str, _viewer: OperatorDep) -> Response:
    """A verification's progress (the page reloads itself until it is finished) or result."""
    run = verify_runs.get(run_id)
    if run is None:
        raise not_found()
    return render(request, "operator/verify.html", {"run": run})


def _code_name(kind: type[AccountCode] | type[TransferCode], value: int) -> str:
    try:
        return kind(value).name
    except ValueError:
        return str(value)


@router.get("/ledger/transfer")
def transfer_page(request: Request, _viewer: OperatorDep, id: str = "") -> Response:
    """A transfer by id: its fields, its accounts, its proof and whether the proof holds."""
    runtime = runtime_of(request)
    context: dict[str, Any] = {"transfer_id": id.strip(), "transfer": None, "proof": None,
                               "proof_error": "", "sealed": False, "accounts": {}}  # fmt: skip
    status = 200
    if id.strip():
        signer = runtime.ledger_signer()
        with runtime.db.uow(readonly=True) as uow:
            transfer = ledger.get_transfer(uow, transfer_id=id.strip())
            if transfer is not None:
                found = ledger.get_accounts(
                    uow, ids=[transfer.debit_account_id, transfer.credit_account_id]
                )
                context["accounts"] = {
                    pk: (_code_name(AccountCode, a.code), a.owner_ref) for pk, a in found.items()
                }
                try:
                    context["proof"] = inclusion_proof(uow, transfer_id=transfer.id, signer=signer)
                except NotSealedYet:
                    context["proof"] = None
        if transfer is None:
            status = 404
        else:
            context["transfer"] = transfer
            context["code_name"] = _code_name(TransferCode, transfer.code)
            if context["proof"] is not None:
                try:
                    verify_inclusion_proof(
                        context["proof"], signer.public_key, transfer.canonical()
                    )
                    context["sealed"] = True
                except ProofError as exc:
                    context["proof_error"] = str(exc)
    return render(request, "operator/transfer.html", context, status_code=status)
