"""The failpoint switchboard (platform/failpoints.py): what a spec arms, and that a point
fires exactly on its n-th hit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.platform import failpoints


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    yield
    failpoints.arm("")


@given(
    st.dictionaries(
        st.sampled_from(sorted(failpoints.POINTS)),
        st.tuples(st.sampled_from(sorted(failpoints.ACTIONS)), st.integers(1, 50)),
    )
)
def test_a_written_spec_reads_back(points: dict[str, tuple[str, int]]) -> None:
    spec = ", ".join(f"{name}={action}@{n}" for name, (action, n) in points.items())
    assert failpoints.parse(spec) == points


@pytest.mark.parametrize(
    "spec", ["nowhere=crash", "commit.after=explode", "commit.after=crash@0", "commit.after=@x"]
)
def test_a_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"failpoint|invalid literal"):
        failpoints.parse(spec)


def test_the_default_action_is_a_crash_on_the_first_hit() -> None:
    assert failpoints.parse("commit.after") == {"commit.after": ("crash", 1)}


@given(st.integers(1, 20))
def test_an_error_point_fires_on_its_nth_hit_only(n: int) -> None:
    failpoints.arm(f"ledger.post.after=error@{n}")
    assert failpoints.armed()
    for _ in range(n - 1):
        failpoints.hit("ledger.post.after")
        failpoints.hit("commit.after")  # not armed: never fires
    with pytest.raises(failpoints.FailpointError):
        failpoints.hit("ledger.post.after")
    failpoints.hit("ledger.post.after")  # once only


def test_disarmed_by_default() -> None:
    failpoints.arm("")
    assert not failpoints.armed()
    failpoints.hit("commit.before")
