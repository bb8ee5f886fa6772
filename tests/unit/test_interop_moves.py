"""The move's state machine and the package (citywallet.interop.moves): pure, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from citywallet.interop.moves import (
    FINAL,
    TRANSITIONS,
    MoveEvent,
    MovePackage,
    MoveState,
    MoveTransitionError,
    advance,
    check_package,
    holds_money_in_flight,
)

KINDS = frozenset({"topup", "transfer_in", "transfer_out"})
HAPPY = [
    MoveEvent.PACKAGE_QUEUED, MoveEvent.ACCEPTED, MoveEvent.QUOTE_ASKED, MoveEvent.PREPARED,
    MoveEvent.COMMITTED, MoveEvent.ALIAS_QUEUED, MoveEvent.ALIAS_CONFIRMED,
]  # fmt: skip


def _walk(events: list[MoveEvent]) -> list[MoveState]:
    """The states visited applying ``events`` (those that do not apply are skipped)."""
    state, seen = MoveState.FROZEN, [MoveState.FROZEN]
    for event in events:
        try:
            state = advance(state, event)
        except MoveTransitionError:
            continue
        seen.append(state)
    return seen


def test_the_happy_path_ends_done() -> None:
    assert _walk(HAPPY)[-1] is MoveState.DONE


def test_a_wallet_with_nothing_in_it_skips_the_transfer() -> None:
    events = [MoveEvent.PACKAGE_QUEUED, MoveEvent.ACCEPTED, MoveEvent.NOTHING_TO_MOVE,
              MoveEvent.ALIAS_QUEUED, MoveEvent.ALIAS_CONFIRMED]  # fmt: skip
    assert _walk(events)[-1] is MoveState.DONE


def test_a_failed_transfer_is_asked_again() -> None:
    events = [MoveEvent.PACKAGE_QUEUED, MoveEvent.ACCEPTED, MoveEvent.QUOTE_ASKED,
              MoveEvent.PREPARED, MoveEvent.TRANSFER_FAILED]  # fmt: skip
    assert _walk(events)[-1] is MoveState.ACCEPTED
    assert _walk([*events, *HAPPY[2:]])[-1] is MoveState.DONE


def test_an_event_that_does_not_apply_is_refused() -> None:
    with pytest.raises(MoveTransitionError):
        advance(MoveState.FROZEN, MoveEvent.COMMITTED)
    with pytest.raises(MoveTransitionError):
        advance(MoveState.DONE, MoveEvent.REFUSED)


@given(st.lists(st.sampled_from(list(MoveEvent)), max_size=40))
def test_any_script_keeps_the_rules(events: list[MoveEvent]) -> None:
    seen = _walk(events)
    # a final state never changes again
    for i, state in enumerate(seen):
        if state in FINAL:
            assert seen[i:] == [state] * (len(seen) - i)
    # done only through the committed balance (or none to move) and the alias handover
    if MoveState.DONE in seen:
        assert MoveState.TRANSFERRED in seen
        assert MoveState.ALIAS_SENT in seen
        assert MoveState.REFUSED not in seen
    # a refused move never reached the money
    if MoveState.REFUSED in seen:
        assert not any(holds_money_in_flight(s) for s in seen)
        assert MoveState.ACCEPTED not in seen


def test_every_state_but_the_final_ones_has_a_way_on() -> None:
    sources = {state for state, _ in TRANSITIONS}
    assert sources == set(MoveState) - FINAL


def _package(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "moveId": "7c23e80c-d078-4077-8263-2c047876fcf6",
        "fromFsp": "cell-1",
        "toFsp": "cell-2",
        "userId": "usr_abc",
        "balance": {"amount": 47000, "currency": "CNY"},
        "profile": {
            "phone": "13901000001",
            "passwordHash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "name": "张伟",
            "idNumber": "11010119600101100X",
            "providerRef": "sandbox-1",
            "verifiedAt": 1,
            "registeredAt": 1,
            "checks": [{"kind": "resident_id", "count": 1}],
        },
        "cards": [
            {
                "cardNumber": "6222020000000001",
                "bankCode": "ICBC",
                "bankName": "工商银行",
                "checkRef": "ref",
                "boundAt": 1,
            }
        ],
        "history": [
            {
                "objectId": "top_1",
                "kind": "topup",
                "amount": 50000,
                "fee": 0,
                "currency": "CNY",
                "status": "succeeded",
                "counterpartyLabel": "",
                "note": "",
                "createdAt": 1,
            },
            {
                "objectId": "p2p_1",
                "kind": "transfer_out",
                "amount": 3000,
                "fee": 0,
                "currency": "CNY",
                "status": "succeeded",
                "counterpartyLabel": "*芳",
                "note": "dinner",
                "reference": None,
                "createdAt": 2,
            },
        ],
    }
    body.update(changes)
    return body


def test_a_package_parses_strictly_and_checks_its_receiver() -> None:
    package = MovePackage.model_validate(_package())
    assert check_package(package, receiver="cell-2", sender="cell-1", kinds=KINDS) is None
    wrong = check_package(package, receiver="cell-3", sender=None, kinds=KINDS)
    assert wrong is not None
    assert wrong.reason == "not_for_this_cell"
    spoofed = check_package(package, receiver="cell-2", sender="cell-3", kinds=KINDS)
    assert spoofed is not None
    assert spoofed.reason == "sender_mismatch"
    unknown = check_package(package, receiver="cell-2", sender=None, kinds=frozenset({"topup"}))
    assert unknown is not None
    assert unknown.reason == "unknown_history_kind"
    assert MovePackage.model_validate_json(package.wire()) == package


@pytest.mark.parametrize(
    "changes",
    [
        {"toFsp": "cell-1"},  # to itself
        {"balance": {"amount": -1, "currency": "CNY"}},
        {"history": [_package()["history"][0]] * 2},  # type: ignore[index]
        {"profile": {**_package()["profile"], "passwordHash": "plain"}},  # type: ignore[dict-item]
        {"profile": {**_package()["profile"], "phone": "12345"}},  # type: ignore[dict-item]
        {
            "cards": [
                {"cardNumber": "12", "bankCode": "X", "bankName": "", "checkRef": "", "boundAt": 0}
            ]
        },
        {"extra": 1},
    ],
)
def test_a_malformed_package_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MovePackage.model_validate(_package(**changes))
