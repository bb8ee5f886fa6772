"""Public ledger endpoints: the signing key, inclusion proofs, checkpoints, consistency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from citywallet.api.deps import RuntimeDep
from citywallet.ledger import log
from citywallet.ledger.blocks import NotSealedYet, inclusion_proof
from citywallet.ledger.verifier import PROOF_FORMAT, note_verifier_key
from citywallet.platform.errors import Conflict, InvalidInput, NotFound

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


class PublicKey(BaseModel):
    """The key that signs every block; pin it to check proofs offline."""

    algorithm: str = Field(examples=["Ed25519"])
    public_key: str = Field(description="Raw 32-byte key, hex.")
    key_id: str
    proof_format: str
    origin: str = Field(description="The log's name in its checkpoints.")
    note_verifier_key: str = Field(
        description="The key as a C2SP signed-note verifier key (name+keyID+base64 key)."
    )


class InclusionProof(BaseModel):
    """Proof that a transfer is in a signed block (see docs/ledger-proofs.md)."""

    format: str
    transfer_id: str
    leaf_index: int
    leaf_hash: str
    audit_path: list[str]
    block: dict[str, Any]
    block_hash: str
    signature: str
    public_key: str
    log: dict[str, Any] | None = Field(
        default=None,
        description="The transfer's place in the global log: leaf_index, tree_size, "
        "audit_path (hex) and the signed checkpoint (text) the path leads to.",
    )


class ConsistencyProof(BaseModel):
    """RFC 9162 §2.1.4 proof that the log of size ``to`` extends the log of size ``from``."""

    from_size: int = Field(alias="from")
    to_size: int = Field(alias="to")
    hashes: list[str] = Field(description="SHA-256 node hashes, hex, in RFC 9162 order.")


@router.get("/public-key", response_model=PublicKey)
def public_key(runtime: RuntimeDep) -> PublicKey:
    """The platform's ledger public key."""
    signer = runtime.ledger_signer()
    return PublicKey(
        algorithm="Ed25519",
        public_key=signer.public_key.hex(),
        key_id=signer.key_id,
        proof_format=PROOF_FORMAT,
        origin=signer.origin,
        note_verifier_key=note_verifier_key(signer.origin, signer.public_key),
    )


@router.get("/transfers/{transfer_id}/proof", response_model=InclusionProof)
def transfer_proof(transfer_id: str, runtime: RuntimeDep) -> InclusionProof:
    """The inclusion proof of a transfer. It carries hashes only, never the transfer itself:
    whoever holds the receipt checks it against the proven leaf."""
    signer = runtime.ledger_signer()
    with runtime.db.uow(readonly=True) as uow:
        try:
            proof = inclusion_proof(uow, transfer_id=transfer_id, signer=signer)
        except LookupError:
            raise NotFound("No such transfer.", code="transfer_not_found") from None
        except NotSealedYet:
            raise Conflict(
                "The transfer is recorded but not sealed into a block yet; "
                "blocks are sealed every few seconds.",
                code="not_sealed_yet",
                retry_after=5,
            ) from None
    return InclusionProof(**proof)


_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "A C2SP signed checkpoint (tlog-checkpoint).", **_TEXT},
        404: {"description": "no_checkpoint_yet, checkpoint_not_found."},
        422: {"description": "Invalid size."},
    },
)
def checkpoint(
    runtime: RuntimeDep, size: Annotated[int | None, Query(ge=1)] = None
) -> PlainTextResponse:
    """The newest signed checkpoint of the global log, or the one published at ``size``."""
    with runtime.db.uow(readonly=True) as uow:
        note = log.latest_checkpoint(uow) if size is None else log.checkpoint_at(uow, size)
    if note is None:
        if size is None:
            raise NotFound("Nothing has been sealed yet.", code="no_checkpoint_yet")
        raise NotFound("No checkpoint was published at that size.", code="checkpoint_not_found")
    return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})


@router.get(
    "/consistency",
    response_model=ConsistencyProof,
    responses={422: {"description": "consistency_sizes_invalid, tree_size_unknown."}},
)
def consistency(
    runtime: RuntimeDep,
    from_size: Annotated[int, Query(alias="from", ge=0)],
    to_size: Annotated[int, Query(alias="to", ge=0)],
) -> ConsistencyProof:
    """The consistency proof between two sizes of the log (empty when from is 0 or equals to)."""
    with runtime.db.uow(readonly=True) as uow:
        try:
            hashes = log.consistency(uow, first=from_size, second=to_size)
        except log.TreeSizeError as exc:
            raise InvalidInput(str(exc), code=exc.code) from None
    return ConsistencyProof.model_validate(
        {"from": from_size, "to": to_size, "hashes": [h.hex() for h in hashes]}
    )
