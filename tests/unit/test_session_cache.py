"""The session cache's rules (pure, property-tested against a model): an entry lives at most
its TTL, a drop forgets what it selects at once, a lookup begun before a drop never puts
its answer back, and the cache never holds more than its bound."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from citywallet.identity.session_cache import CachedSession, PendingTouches, SessionCache

TTL = 5.0
BOUND = 4


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def entry(key: int, user: int) -> CachedSession:
    return CachedSession(
        user_id=f"usr_{user}",
        user_pk=user,
        session_id=f"ses_{key}",
        session_pk=key,
        kind="bearer",
        expires_at=10**18,
        last_seen_at=0,
    )


keys = st.integers(0, 6)
users = st.integers(0, 2)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, users, st.booleans()),  # (…, stale generation?)
        st.tuples(st.just("drop_user"), users),
        st.tuples(st.just("drop_session"), keys),
        st.tuples(st.just("wait"), st.floats(0, 3)),
        st.tuples(st.just("touch"), keys, st.integers(1, 10**6)),
    ),
    max_size=40,
)


@given(operations)
def test_the_cache_agrees_with_its_model(ops: list[tuple[object, ...]]) -> None:
    clock = Clock()
    cache = SessionCache(ttl_seconds=TTL, max_entries=BOUND, clock=clock)
    model: dict[str, tuple[float, CachedSession]] = {}  # key → (deadline, value), oldest first
    for op in ops:
        match op:
            case ("put", int(key), int(user), bool(stale)):
                generation = cache.generation
                if stale:  # something was dropped while this lookup read the database
                    cache.drop(lambda _e: False)
                stored = cache.put(str(key), entry(key, user), generation=generation)
                assert stored is not stale
                if stored:
                    model.pop(str(key), None)
                    while len(model) >= BOUND:
                        del model[next(iter(model))]
                    model[str(key)] = (clock.now + TTL, entry(key, user))
            case ("drop_user", int(user)):
                cache.drop(lambda e, user=user: e.user_pk == user)
                model = {k: v for k, v in model.items() if v[1].user_pk != user}
            case ("drop_session", int(key)):
                cache.drop(lambda e, key=key: e.session_pk == key)
                model = {k: v for k, v in model.items() if v[1].session_pk != key}
            case ("wait", float(seconds)):
                clock.now += seconds
            case ("touch", int(key), int(moment)):
                cache.touched(str(key), moment)
                if str(key) in model:
                    deadline, value = model[str(key)]
                    model[str(key)] = (deadline, _seen(value, moment))
        assert len(cache) <= BOUND
        for key in map(str, range(7)):
            expected = model.get(key)
            live = expected is not None and clock.now < expected[0]
            assert cache.get(key) == (expected[1] if live and expected else None)
        model = {k: v for k, v in model.items() if clock.now < v[0]}  # get() forgot those


def _seen(value: CachedSession, moment: int) -> CachedSession:
    return CachedSession(**{**value.__dict__, "last_seen_at": moment})


@given(keys, users)
def test_a_zero_ttl_caches_nothing(key: int, user: int) -> None:
    cache = SessionCache(ttl_seconds=0, max_entries=BOUND)
    assert not cache.put(str(key), entry(key, user), generation=cache.generation)
    assert cache.get(str(key)) is None


@given(st.integers(1, 20), st.floats(TTL, 100))
def test_expired_entries_go_when_new_ones_come(count: int, later: float) -> None:
    clock = Clock()
    cache = SessionCache(ttl_seconds=TTL, max_entries=1000, clock=clock)
    for key in range(count):
        assert cache.put(str(key), entry(key, 0), generation=cache.generation)
    assert len(cache) == count
    clock.now += later  # every one of them expired, none was asked for since
    assert cache.put("new", entry(99, 1), generation=cache.generation)
    assert len(cache) == 1


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6)), max_size=30))
def test_pending_touches_keep_each_sessions_latest_moment(uses: list[tuple[int, int]]) -> None:
    pending, model = PendingTouches(), dict[int, int]()
    for pk, moment in uses:
        pending.add(pk, moment)
        model[pk] = max(moment, model.get(pk, moment))
    assert len(pending) == len(model)
    assert pending.take() == model
    assert pending.take() == {}
