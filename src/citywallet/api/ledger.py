"""Public ledger endpoints: the signing key and inclusion proofs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from citywallet.api.deps import RuntimeDep
from citywallet.ledger.blocks import NotSealedYet, inclusion_proof
from citywallet.ledger.verifier import PROOF_FORMAT
from citywallet.platform.errors import Conflict, NotFound

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


class PublicKey(BaseModel):
    """The key that signs every block; pin it to check proofs offline."""

    algorithm: str = Field(examples=["Ed25519"])
    public_key: str = Field(description="Raw 32-byte key, hex.")
    key_id: str
    proof_format: str


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


@router.get("/public-key", response_model=PublicKey)
def public_key(runtime: RuntimeDep) -> PublicKey:
    """The platform's ledger public key."""
    signer = runtime.ledger_signer()
    return PublicKey(
        algorithm="Ed25519",
        public_key=signer.public_key.hex(),
        key_id=signer.key_id,
        proof_format=PROOF_FORMAT,
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
