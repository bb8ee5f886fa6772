"""The pure rules of dual control and of operators' TOTP codes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from citywallet.control import rules
from citywallet.identity import totp_rules

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
users = st.sampled_from(["usr_a", "usr_b", "usr_c"])


@given(
    state=st.sampled_from(rules.STATES),
    proposer=users,
    decider=users,
    expires_at=st.integers(0, 10**6),
    now=st.integers(0, 10**6),
)
def test_only_another_operator_decides_a_live_pending_proposal(
    state: str, proposer: str, decider: str, expires_at: int, now: int
) -> None:
    verdict = rules.may_decide(
        state=state, proposer=proposer, decider=decider, expires_at=expires_at, now=now
    )
    allowed = state == "pending" and now < expires_at and proposer != decider
    assert verdict.ok == allowed
    if state != "pending":
        assert verdict.code == "proposal_not_pending"
    elif now >= expires_at:
        assert verdict.code == "proposal_expired"
    elif proposer == decider:
        assert verdict.code == "self_approval_refused"


def test_the_actions_under_dual_control() -> None:
    assert set(rules.KINDS) == {
        "campaign.fund", "campaign.issue", "campaign.reclaim",
        "resident.freeze", "resident.unfreeze",
    }  # fmt: skip
    assert {"resident.freeze", "resident.unfreeze"} == rules.NEEDS_REASON


@given(now=st.integers(1_000_000_000, 4_000_000_000), drift=st.sampled_from([-30, 0, 30]))
def test_the_right_code_passes_within_one_step_either_side(now: int, drift: int) -> None:
    step = totp_rules.step_of(now + drift)
    code = totp_rules.code_at(SECRET, step=step)
    assert totp_rules.matching_step(SECRET, code, now_seconds=now, last_step=0) == step
    # the same code once accepted is not accepted again (no replay)
    assert totp_rules.matching_step(SECRET, code, now_seconds=now, last_step=step) is None


@given(now=st.integers(1_000_000_000, 4_000_000_000))
def test_a_code_two_steps_away_or_wrong_is_refused(now: int) -> None:
    current = totp_rules.step_of(now)
    for step in (current - 2, current + 2):
        code = totp_rules.code_at(SECRET, step=step)
        near = {totp_rules.code_at(SECRET, step=s) for s in (current - 1, current, current + 1)}
        if code not in near:  # a collision of 6 digits is possible, not a bug
            assert totp_rules.matching_step(SECRET, code, now_seconds=now, last_step=0) is None
    right = totp_rules.code_at(SECRET, step=current)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    near = {totp_rules.code_at(SECRET, step=s) for s in (current - 1, current, current + 1)}
    if wrong not in near:
        assert totp_rules.matching_step(SECRET, wrong, now_seconds=now, last_step=0) is None
    for junk in ("", "12345", "1234567", "abcdef"):
        assert totp_rules.matching_step(SECRET, junk, now_seconds=now, last_step=0) is None


def test_the_enrolment_uri_is_what_authenticator_apps_read() -> None:
    uri = totp_rules.provisioning_uri(SECRET, account="139****0009", issuer="CityWallet")
    assert uri.startswith("otpauth://totp/CityWallet:139%2A%2A%2A%2A0009?")
    assert f"secret={SECRET}" in uri
    assert "issuer=CityWallet" in uri
    assert len(totp_rules.new_secret()) == 32
    # RFC 6238's SHA-1 test vector (59 s, 8 digits → last 6 of 94287082)
    rfc_secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp_rules.code_at(rfc_secret, step=totp_rules.step_of(59)) == "287082"
