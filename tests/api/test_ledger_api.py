"""The public ledger endpoints, health, metrics and the problem+json contract."""

from __future__ import annotations

from fastapi.testclient import TestClient

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import seal_all
from citywallet.ledger.types import AccountCode, AccountFlags, TransferSpec
from citywallet.ledger.verifier import (
    ProofError,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_inclusion_proof,
)
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean


def _post_two(runtime: Runtime) -> None:
    def run(uow):  # type: ignore[no-untyped-def]
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        wallet = ledger.create_account(
            uow,
            ledger="CNY",
            code=AccountCode.CUSTOMER_WALLET,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        ledger.post(
            uow,
            transfers=[
                TransferSpec("txf_a", bank, wallet, 1234, "CNY", 1),
                TransferSpec("txf_b", wallet, bank, 34, "CNY", 2),
            ],
        )

    runtime.db.transact(run)


def test_a_third_party_verifies_a_proof_with_the_public_key_alone(
    client: TestClient, runtime: Runtime
) -> None:
    _post_two(runtime)
    assert client.get("/v1/ledger/transfers/txf_b/proof").json()["code"] == "not_sealed_yet"
    signer = runtime.ledger_signer()
    runtime.db.transact(lambda uow: seal_all(uow, signer))

    key = client.get("/v1/ledger/public-key").json()
    proof = client.get("/v1/ledger/transfers/txf_b/proof").json()
    with runtime.db.uow(readonly=True) as uow:
        receipt = ledger.get_transfer(uow, transfer_id="txf_b")
    assert receipt is not None
    header = verify_inclusion_proof(proof, bytes.fromhex(key["public_key"]), receipt.canonical())
    assert header["height"] == 0
    assert header["key_id"] == key["key_id"]

    forged = dict(receipt.canonical(), amount=receipt.amount + 1)
    try:
        verify_inclusion_proof(proof, bytes.fromhex(key["public_key"]), forged)
    except ProofError:
        pass
    else:
        raise AssertionError("a forged receipt verified")
    assert_ledger_clean(runtime.db)


def test_unknown_transfer_is_a_problem_json_404(client: TestClient) -> None:
    response = client.get("/v1/ledger/transfers/txf_nope/proof")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "transfer_not_found"
    assert body["status"] == 404
    assert body["type"].endswith("/transfer_not_found")


def test_not_sealed_yet_says_when_to_retry(client: TestClient, runtime: Runtime) -> None:
    _post_two(runtime)
    response = client.get("/v1/ledger/transfers/txf_a/proof")
    assert response.status_code == 409
    assert response.headers["retry-after"] == "5"
    assert_ledger_clean(runtime.db)


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_health_and_metrics(client: TestClient, runtime: Runtime) -> None:
    health = client.get("/healthz")
    assert health.json() == {"status": "ok", "database": runtime.db.dialect}
    metrics = client.get("/metrics").text
    assert 'citywallet_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


def test_openapi_document_lists_the_ledger_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/ledger/public-key" in paths
    assert "/v1/ledger/transfers/{transfer_id}/proof" in paths
    assert "/v1/ledger/checkpoint" in paths
    assert "/v1/ledger/consistency" in paths


def test_checkpoints_and_consistency_between_them(client: TestClient, runtime: Runtime) -> None:
    missing = client.get("/v1/ledger/checkpoint")
    assert missing.status_code == 404
    assert missing.json()["code"] == "no_checkpoint_yet"
    signer = runtime.ledger_signer()
    _post_two(runtime)
    runtime.db.transact(lambda uow: seal_all(uow, signer))
    first_text = client.get("/v1/ledger/checkpoint")
    assert first_text.status_code == 200
    assert first_text.headers["content-type"].startswith("text/plain")
    key = client.get("/v1/ledger/public-key").json()
    public_key = bytes.fromhex(key["public_key"])
    first = verify_checkpoint(first_text.text, public_key, origin=key["origin"])
    assert first.tree_size == 2
    assert key["note_verifier_key"].startswith(key["origin"] + "+")

    def more(uow):  # type: ignore[no-untyped-def]
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        other = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        specs = [TransferSpec(f"txf_more_{i}", bank, other, 1 + i, "CNY", 1) for i in range(5)]
        ledger.post(uow, transfers=specs)

    runtime.db.transact(more)
    runtime.db.transact(lambda uow: seal_all(uow, signer, max_transfers=2))
    latest = verify_checkpoint(client.get("/v1/ledger/checkpoint").text, public_key)
    assert latest.tree_size == 7
    # Every published size stays available.
    for size in (2, 4, 6, 7):
        assert client.get("/v1/ledger/checkpoint", params={"size": size}).status_code == 200
    gone = client.get("/v1/ledger/checkpoint", params={"size": 3})
    assert (gone.status_code, gone.json()["code"]) == (404, "checkpoint_not_found")
    proof = client.get("/v1/ledger/consistency", params={"from": 2, "to": 7}).json()
    assert (proof["from"], proof["to"]) == (2, 7)
    verify_checkpoint_consistency(first, latest, [bytes.fromhex(h) for h in proof["hashes"]])
    # The inclusion proof names the checkpoint it proves against.
    included = client.get("/v1/ledger/transfers/txf_a/proof").json()
    assert verify_checkpoint(included["log"]["checkpoint"], public_key) == latest
    verify_inclusion_proof(included, public_key)

    for params, code in (
        ({"from": 5, "to": 3}, "consistency_sizes_invalid"),
        ({"from": 2, "to": 8}, "tree_size_unknown"),
    ):
        refused = client.get("/v1/ledger/consistency", params=params)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == code
    assert client.get("/v1/ledger/consistency", params={"from": -1, "to": 2}).status_code == 422
    assert_ledger_clean(runtime.db)
