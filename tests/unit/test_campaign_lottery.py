"""The campaign lottery, its draw file, and the stand-alone checker (pure, no DB)."""

from __future__ import annotations

import ast
import copy
import hashlib
import hmac
import json
import random
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.campaign import drawcheck, lottery
from citywallet.campaign.lottery import Winner

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "campaign-draw.md"
DRAWCHECK = ROOT / "src" / "citywallet" / "campaign" / "drawcheck.py"

registration_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
id_lists = st.lists(registration_ids, unique=True, max_size=30)
seeds = st.binary(min_size=32, max_size=32)
prize_lists = st.lists(st.sampled_from([6600, 8800, 16800, 20000, 52000]), max_size=12)


def reference_draw(seed: bytes, ids: list[str], prizes: list[int]) -> list[Winner]:
    """The rule as written in the docs: sort everyone by (HMAC ticket, id), take the first K."""
    tickets = sorted((hmac.new(seed, i.encode(), hashlib.sha256).hexdigest(), i) for i in ids)
    largest_first = sorted(prizes, reverse=True)
    return [
        Winner(rank=r, registration_id=i, ticket=t, prize=largest_first[r - 1])
        for r, (t, i) in enumerate(tickets[: len(prizes)], start=1)
    ]


def both_verdicts(document: Any) -> list[str]:
    """Both verifiers' problems, asserting that they agree (also after a JSON round trip)."""
    problems = lottery.verify_draw(document)
    assert drawcheck.check_draw(document) == problems
    reloaded = json.loads(json.dumps(document))
    assert lottery.verify_draw(reloaded) == problems
    assert drawcheck.check_draw(reloaded) == problems
    return problems


def make_document(
    seed: bytes, ids: list[str], prizes: list[int], campaign_id: str = "luohu-2020"
) -> dict[str, Any]:
    winners = lottery.draw(seed, ids, prizes)
    return lottery.draw_file(campaign_id, seed, lottery.commitment(seed), ids, prizes, winners)


# --- seeds, commitments, list hashes, tickets --------------------------------------------


def test_seed_and_commitment() -> None:
    seed = lottery.new_seed()
    assert len(seed) == 32
    assert lottery.new_seed() != seed
    assert lottery.commitment(seed) == hashlib.sha256(seed).hexdigest()
    for bad in (b"", b"x" * 31, b"x" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            lottery.commitment(bad)


def test_list_hash_is_over_the_sorted_ids_each_ending_in_a_line_feed() -> None:
    assert lottery.list_hash(["b", "a"]) == hashlib.sha256(b"a\nb\n").hexdigest()
    assert lottery.list_hash(["a", "b"]) == lottery.list_hash(iter(["b", "a"]))
    assert lottery.list_hash(["B", "a", "_"]) == hashlib.sha256(b"B\n_\na\n").hexdigest()
    assert lottery.list_hash([]) == hashlib.sha256(b"").hexdigest()
    assert lottery.list_hash(["ab"]) != lottery.list_hash(["a", "b"])


@pytest.mark.parametrize("bad", ["", "a b", "tab\there", "é", "a\nb", "x" * 129, 7])
def test_registration_ids_are_printable_ascii_without_spaces(bad: Any) -> None:
    assert not lottery.is_valid_registration_id(bad)
    with pytest.raises(ValueError, match="printable ASCII"):
        lottery.list_hash(["reg_ok", bad])
    with pytest.raises(ValueError, match="printable ASCII"):
        lottery.draw(bytes(32), ["reg_ok", bad], [1])
    assert lottery.is_valid_registration_id("x" * 128)
    assert lottery.is_valid_registration_id("reg_01JD8Z~!")


tricky_texts = st.text(alphabet="ab~!\n \t\x7fé", max_size=4)


@given(st.lists(tricky_texts | registration_ids, unique=True, max_size=8))
def test_the_bulk_id_check_matches_the_one_by_one_check(ids: list[str]) -> None:
    if all(map(lottery.is_valid_registration_id, ids)):
        data = "".join(f"{i}\n" for i in sorted(ids)).encode()
        assert lottery.list_hash(ids) == hashlib.sha256(data).hexdigest()
        assert len(lottery.draw(bytes(32), ids, [1] * 3)) == min(3, len(ids))
    else:
        with pytest.raises(ValueError, match="printable ASCII"):
            lottery.list_hash(ids)
        with pytest.raises(ValueError, match="printable ASCII"):
            lottery.draw(bytes(32), ids, [1])


def test_repeated_registrants_are_refused() -> None:
    with pytest.raises(ValueError, match="'reg_b' is listed more than once"):
        lottery.list_hash(["reg_b", "reg_a", "reg_b"])
    with pytest.raises(ValueError, match="'reg_b' is listed more than once"):
        lottery.draw(bytes(32), ["reg_b", "reg_a", "reg_b"], [100])


@pytest.mark.parametrize("bad", [[0], [-100], [True], [1.5], [100, "100"]])
def test_prizes_are_positive_integers(bad: list[Any]) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        lottery.draw(bytes(32), ["reg_a"], bad)


def test_ticket_is_hmac_sha256_of_the_id_under_the_seed() -> None:
    seed = bytes(range(32))
    expected = hmac.new(seed, b"reg_M0p5", hashlib.sha256).hexdigest()
    assert lottery.ticket(seed, "reg_M0p5").hex() == expected
    with pytest.raises(ValueError, match="printable ASCII"):
        lottery.ticket(seed, "reg M0p5")


# --- the draw ------------------------------------------------------------------------------


@given(seeds, id_lists, prize_lists)
def test_draw_is_the_plain_rule(seed: bytes, ids: list[str], prizes: list[int]) -> None:
    winners = lottery.draw(seed, ids, prizes)
    assert winners == reference_draw(seed, ids, prizes)
    assert len(winners) == min(len(prizes), len(ids))
    assert [w.rank for w in winners] == list(range(1, len(winners) + 1))
    for winner in winners:
        assert lottery.ticket(seed, winner.registration_id).hex() == winner.ticket


@given(seeds, id_lists, prize_lists, st.randoms())
def test_ranking_is_the_draw_and_every_position(
    seed: bytes, ids: list[str], prizes: list[int], rnd: random.Random
) -> None:
    winners, positions = lottery.ranking(seed, ids, prizes)
    assert winners == lottery.draw(seed, ids, prizes)
    # the position is the place in the plain rule's order: by (ticket, id), 1 = lowest
    everyone = sorted(ids, key=lambda i: (hmac.new(seed, i.encode(), hashlib.sha256).digest(), i))
    assert positions == [everyone.index(i) + 1 for i in ids]
    assert sorted(positions) == list(range(1, len(ids) + 1))
    assert all(positions[ids.index(w.registration_id)] == w.rank for w in winners)
    shuffled = ids[:]
    rnd.shuffle(shuffled)
    again_winners, again = lottery.ranking(seed, shuffled, prizes)
    assert again_winners == winners
    assert dict(zip(shuffled, again, strict=True)) == dict(zip(ids, positions, strict=True))


def test_ranking_refuses_what_the_draw_refuses() -> None:
    for bad in (["a", "a"], ["a b"], [""]):
        with pytest.raises(ValueError):  # noqa: PT011 - the message is the draw's
            lottery.ranking(bytes(32), bad, [1])
    with pytest.raises(ValueError, match="seed"):
        lottery.ranking(b"short", ["a"], [1])
    with pytest.raises(ValueError, match="prize"):
        lottery.ranking(bytes(32), ["a"], [0])


@given(seeds, id_lists, prize_lists, st.randoms())
def test_draw_is_deterministic_and_ignores_input_order(
    seed: bytes, ids: list[str], prizes: list[int], rnd: random.Random
) -> None:
    first = lottery.draw(seed, ids, prizes)
    assert lottery.draw(seed, ids, prizes) == first
    shuffled_ids, shuffled_prizes = ids[:], prizes[:]
    rnd.shuffle(shuffled_ids)
    rnd.shuffle(shuffled_prizes)
    assert lottery.draw(seed, shuffled_ids, shuffled_prizes) == first
    assert lottery.draw(seed, tuple(ids), tuple(prizes)) == first


@given(st.integers(0, 40), st.integers(0, 40))
def test_winner_count_is_min_of_prizes_and_registrants(registrants: int, prizes: int) -> None:
    ids = [f"reg_{n}" for n in range(registrants)]
    winners = lottery.draw(bytes(32), ids, [100 + n for n in range(prizes)])
    assert len(winners) == min(prizes, registrants)
    assert len({w.registration_id for w in winners}) == len(winners)
    # with fewer registrants than prizes, the smallest prizes go undrawn
    assert [w.prize for w in winners] == sorted(range(100, 100 + prizes), reverse=True)[
        : len(winners)
    ]


@given(seeds, id_lists.filter(bool), prize_lists.filter(bool), st.data())
def test_changing_one_seed_byte_changes_the_result(
    seed: bytes, ids: list[str], prizes: list[int], data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, 31))
    flip = data.draw(st.integers(1, 255))
    altered = bytearray(seed)
    altered[position] ^= flip
    altered_seed = bytes(altered)
    # every ticket changes, so the winners as published (id, ticket, prize) change
    assert all(lottery.ticket(seed, i) != lottery.ticket(altered_seed, i) for i in ids)
    assert lottery.draw(altered_seed, ids, prizes) != lottery.draw(seed, ids, prizes)
    assert lottery.commitment(altered_seed) != lottery.commitment(seed)


def test_changing_any_seed_byte_changes_who_wins() -> None:
    ids = [f"reg_{n:04d}" for n in range(1000)]
    seed = bytes(range(32))
    winners = {w.registration_id for w in lottery.draw(seed, ids, [20000] * 10)}
    for position in range(32):
        altered = bytearray(seed)
        altered[position] ^= 1
        others = {w.registration_id for w in lottery.draw(bytes(altered), ids, [20000] * 10)}
        assert others != winners, position


@given(seeds, id_lists.filter(bool), prize_lists, registration_ids, st.data())
def test_changing_one_registrant(
    seed: bytes, ids: list[str], prizes: list[int], new_id: str, data: st.DataObject
) -> None:
    """The list hash always changes; the winners change exactly when the change touches them.

    Each ticket depends on its own id only, so replacing a registrant who did not win changes
    the winners only if the newcomer's ticket beats the last winner's.
    """
    assume(new_id not in ids)
    index = data.draw(st.integers(0, len(ids) - 1))
    changed = [*ids[:index], new_id, *ids[index + 1 :]]
    assert lottery.list_hash(changed) != lottery.list_hash(ids)
    before = lottery.draw(seed, ids, prizes)
    after = lottery.draw(seed, changed, prizes)
    if not prizes:
        assert before == after == []
    elif ids[index] in {w.registration_id for w in before}:
        assert after != before
        assert ids[index] not in {w.registration_id for w in after}
    else:
        newcomer = (lottery.ticket(seed, new_id), new_id)
        last = (bytes.fromhex(before[-1].ticket), before[-1].registration_id)
        beats_last = newcomer < last or len(before) < len(prizes)
        assert (after != before) == beats_last
        assert (new_id in {w.registration_id for w in after}) == beats_last


def test_equal_tickets_would_be_ordered_by_id() -> None:
    # Not reachable with HMAC-SHA256; the reference sort and the fast path agree on ids that
    # share a prefix, which is where byte order and string order could have differed.
    ids = ["a", "a!", "a~", "A", "~", "!"]
    assert lottery.draw(bytes(32), ids, [1] * 6) == reference_draw(bytes(32), ids, [1] * 6)


def test_prizes_go_largest_first_whatever_order_they_are_given_in() -> None:
    ids = [f"reg_{n}" for n in range(100)]
    winners = lottery.draw(bytes(32), ids, [6600, 52000, 8800, 16800, 6600])
    assert [w.prize for w in winners] == [52000, 16800, 8800, 6600, 6600]


# --- the draw file and its verification ------------------------------------------------------


def test_draw_file_is_canonical_and_verifies() -> None:
    ids = [f"reg_{n:03d}" for n in range(50, 0, -1)]
    document = make_document(bytes(range(32)), ids, [6600, 52000, 16800])
    assert document["format"] == "citywallet-campaign-draw/1"
    assert document["registrations"] == sorted(ids)
    assert document["registrant_count"] == 50
    assert document["prizes"] == [52000, 16800, 6600]
    assert document["list_hash"] == lottery.list_hash(ids)
    assert both_verdicts(document) == []
    data = lottery.dump_draw_file(document)
    assert data.endswith(b"}\n")
    assert b" " not in data
    assert json.loads(data) == document


# The canonical bytes of a small draw, written out by hand from docs/campaign-draw.md: keys
# sorted at every level, no whitespace, ASCII only, one final line feed.
PINNED_DRAW = (
    b'{"campaign_id":"demo \\u7f57\\u6e56","format":"citywallet-campaign-draw/1",'
    b'"list_hash":"127f9d203d89182b5be910abf08f28d7904a29fc6ba53cd5f57328af04f7ee06",'
    b'"prizes":[300,100],"registrant_count":3,"registrations":["reg_a","reg_b","reg_c"],'
    b'"seed":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
    b'"seed_commitment":"630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd",'
    b'"winners":[{"prize":300,"rank":1,"registration_id":"reg_b",'
    b'"ticket":"b6d2a660ebd83ab481619b5c41d48fbb789deba11e15206809647f3345b157b8"},'
    b'{"prize":100,"rank":2,"registration_id":"reg_c",'
    b'"ticket":"c1b9f77ecc37fe94fe885b44a1abbac99d6a000e15c7c35221ff0ad3a3112f9c"}]}\n'
)


def test_the_canonical_draw_bytes_are_pinned() -> None:
    seed, ids, prizes = bytes(range(32)), ["reg_b", "reg_a", "reg_c"], [100, 300]
    assert lottery.list_hash(ids) == hashlib.sha256(b"reg_a\nreg_b\nreg_c\n").hexdigest()
    winners = reference_draw(seed, ids, prizes)
    document = lottery.draw_file("demo 罗湖", seed, lottery.commitment(seed), ids, prizes, winners)
    assert lottery.dump_draw_file(document) == PINNED_DRAW
    assert both_verdicts(document) == []
    # Insertion order does not matter: the bytes depend only on the content.
    shuffled = dict(reversed(list(document.items())))
    shuffled["winners"] = [dict(reversed(list(w.items()))) for w in document["winners"]]
    assert lottery.dump_draw_file(shuffled) == PINNED_DRAW


def test_draw_file_refuses_a_seed_that_does_not_open_the_commitment() -> None:
    seed = bytes(range(32))
    with pytest.raises(ValueError, match="does not open"):
        lottery.draw_file("c", seed, lottery.commitment(bytes(32)), ["reg_a"], [1], [])
    with pytest.raises(ValueError, match="campaign id"):
        lottery.draw_file("", seed, lottery.commitment(seed), ["reg_a"], [1], [])


def test_more_prizes_than_registrants_verifies() -> None:
    document = make_document(bytes(32), ["reg_a", "reg_b"], [20000] * 5)
    assert len(document["winners"]) == 2
    assert both_verdicts(document) == []
    assert both_verdicts(make_document(bytes(32), [], [20000])) == []


Tamper = Callable[[dict[str, Any]], None]


def _swap_first_two_winners(doc: dict[str, Any]) -> None:
    first, second = doc["winners"][0], doc["winners"][1]
    for key in ("registration_id", "ticket"):
        first[key], second[key] = second[key], first[key]


def _favour_a_loser(doc: dict[str, Any]) -> None:
    winners = {w["registration_id"] for w in doc["winners"]}
    loser = next(i for i in doc["registrations"] if i not in winners)
    doc["winners"][4]["registration_id"] = loser
    doc["winners"][4]["ticket"] = lottery.ticket(bytes.fromhex(doc["seed"]), loser).hex()


def _swap_prizes(doc: dict[str, Any]) -> None:
    first, third = doc["winners"][0], doc["winners"][2]
    first["prize"], third["prize"] = third["prize"], first["prize"]


def _alter_seed(doc: dict[str, Any]) -> None:
    seed = bytearray.fromhex(doc["seed"])
    seed[7] ^= 0x01
    doc["seed"] = seed.hex()


def _rename_a_registrant(doc: dict[str, Any]) -> None:
    winners = {w["registration_id"] for w in doc["winners"]}
    index = next(n for n, i in enumerate(doc["registrations"]) if i not in winners)
    doc["registrations"][index] += "x"


def _drop_a_winner_from_the_list(doc: dict[str, Any]) -> None:
    doc["registrations"].remove(doc["winners"][0]["registration_id"])


def _add_a_registrant(doc: dict[str, Any]) -> None:
    doc["registrations"].append("reg_late")


def _set(path: tuple[Any, ...], value: Any) -> Tamper:
    def tamper(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return tamper


TAMPERS: dict[str, tuple[Tamper, str]] = {
    "winners swapped": (_swap_first_two_winners, "rank 1: the file names '"),
    "a loser named a winner": (_favour_a_loser, "rank 5: the file names '"),
    "prizes swapped": (_swap_prizes, "rank 1: prize 16800 but the prize list gives 52000"),
    "seed altered": (_alter_seed, "seed_commitment is not SHA-256(seed)"),
    "commitment altered": (_set(("seed_commitment",), "0" * 64), "seed_commitment is not"),
    "registrant renamed": (_rename_a_registrant, "list_hash does not match the registrations"),
    "winner removed from the list": (_drop_a_winner_from_the_list, "registrant_count is 60 but"),
    "registrant added": (_add_a_registrant, "registrant_count is 60 but 61"),
    "registrant repeated": (
        lambda doc: doc["registrations"].append(doc["registrations"][3]),
        "is listed more than once",
    ),
    "bad registration id": (
        lambda doc: doc["registrations"].append("reg late"),
        "registration id 'reg late' is not 1 to 128 printable ASCII",
    ),
    "list hash altered": (_set(("list_hash",), "f" * 64), "list_hash does not match"),
    "count altered": (_set(("registrant_count",), 61), "registrant_count is 61 but 60"),
    "prizes reordered": (
        lambda doc: doc["prizes"].reverse(),
        "prizes are not listed largest first",
    ),
    "prize list altered": (
        _set(("prizes", 0), 99999),
        "rank 1: prize 52000 but the prize list gives 99999",
    ),
    "ticket altered": (_set(("winners", 2, "ticket"), "0" * 64), "rank 3: ticket '000"),
    "rank altered": (_set(("winners", 1, "rank"), 3), "winners[1] has rank 3, expected 2"),
    "last winner dropped": (
        lambda doc: doc["winners"].pop(),
        "9 winners are listed but the draw gives 10",
    ),
    "extra winner": (
        lambda doc: doc["winners"].append(dict(doc["winners"][-1], rank=11)),
        "11 winners are listed but the draw gives 10",
    ),
    "wrong format": (_set(("format",), "citywallet-campaign-draw/2"), "unknown format"),
    "seed missing": (lambda doc: doc.pop("seed"), "malformed draw file: missing 'seed'"),
    "seed in capitals": (
        lambda doc: doc.update(seed=doc["seed"].upper()),
        "seed is not 64 lowercase hex",
    ),
    "prize as a boolean": (_set(("prizes", 0), True), "prizes is not a list of positive"),
    "zero prize": (_set(("prizes", 9), 0), "prizes is not a list of positive integers"),
    "negative prize": (_set(("prizes", 9), -6600), "prizes is not a list of positive integers"),
    "negative count": (_set(("registrant_count",), -1), "registrant_count is not a non-negative"),
    "prize as a string": (_set(("winners", 0, "prize"), "52000"), "winners[0] is not an object"),
    "extra winner field": (_set(("winners", 0, "note"), "vip"), "winners[0] is not an object"),
    "registrations not strings": (_set(("registrations", 0), 5), "registrations is not a list"),
    "empty campaign id": (_set(("campaign_id",), ""), "campaign_id is not a non-empty"),
}


@pytest.fixture(scope="module")
def good_document() -> dict[str, Any]:
    ids = [f"reg_{n:02d}" for n in range(60)]
    prizes = [52000, 16800, 16800, 8800, 8800, 8800, 6600, 6600, 6600, 6600]
    return make_document(bytes(range(32)), ids, prizes)


@pytest.mark.parametrize("name", list(TAMPERS))
def test_both_verifiers_catch_tampering(name: str, good_document: dict[str, Any]) -> None:
    tamper, expected = TAMPERS[name]
    document = copy.deepcopy(good_document)
    tamper(document)
    problems = both_verdicts(document)
    assert problems, name
    assert expected in problems[0], problems


def test_an_altered_seed_also_shows_in_the_winners(good_document: dict[str, Any]) -> None:
    document = copy.deepcopy(good_document)
    _alter_seed(document)
    problems = both_verdicts(document)
    assert len(problems) == 2
    assert problems[1].startswith("rank 1: ")


def test_a_registrant_dropped_from_the_list_shows_everywhere(
    good_document: dict[str, Any],
) -> None:
    document = copy.deepcopy(good_document)
    _drop_a_winner_from_the_list(document)
    problems = both_verdicts(document)
    assert problems[0] == "registrant_count is 60 but 59 registrations are listed"
    assert problems[1].startswith("list_hash does not match the registrations (recomputed ")
    assert problems[2].startswith("rank 1: the file names ")


@pytest.mark.parametrize("not_a_draw", [None, [], "draw", 3])
def test_not_a_json_object(not_a_draw: Any) -> None:
    assert both_verdicts(not_a_draw) == ["malformed draw file: not a JSON object"]


@given(seeds, id_lists, prize_lists, st.data())
def test_the_verifiers_agree_on_random_changes(
    seed: bytes, ids: list[str], prizes: list[int], data: st.DataObject
) -> None:
    document = make_document(seed, ids, prizes)
    assert both_verdicts(document) == []
    change = data.draw(st.sampled_from(["winner", "registrations", "prizes", "seed", "none"]))
    if change == "winner" and document["winners"]:
        winner = data.draw(st.sampled_from(document["winners"]))
        field = data.draw(st.sampled_from(["rank", "registration_id", "ticket", "prize"]))
        value = {
            "rank": data.draw(st.integers(0, 40)),
            "registration_id": data.draw(registration_ids),
            "ticket": data.draw(st.binary(min_size=32, max_size=32)).hex(),
            "prize": data.draw(st.integers(1, 60000)),
        }[field]
        assume(winner[field] != value)
        winner[field] = value
    elif change == "registrations":
        document["registrations"] = data.draw(id_lists)
    elif change == "prizes":
        document["prizes"] = data.draw(st.lists(st.integers(1, 60000), max_size=12))
    elif change == "seed":
        document["seed"] = data.draw(seeds).hex()
    changed = document != make_document(seed, ids, prizes)
    problems = both_verdicts(document)
    if not changed:
        assert problems == []
    elif change in ("winner", "seed"):
        assert problems  # a winner's fields and the seed leave nothing to chance


# --- the stand-alone checker ----------------------------------------------------------------


def test_drawcheck_imports_only_the_standard_library() -> None:
    tree = ast.parse(DRAWCHECK.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add((node.module or "").split(".")[0])
    assert imported <= sys.stdlib_module_names | {"__future__"}, imported
    assert "lottery" not in DRAWCHECK.read_text().replace("citywallet.campaign.lottery", "")


def _run_drawcheck(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a copy of drawcheck.py outside the package, as an outsider would."""
    script = tmp_path / "drawcheck.py"
    script.write_bytes(DRAWCHECK.read_bytes())
    return subprocess.run(
        [sys.executable, "-I", str(script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_drawcheck_command_line(tmp_path: Path, good_document: dict[str, Any]) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(lottery.dump_draw_file(good_document))
    winner = good_document["winners"][1]
    result = _run_drawcheck(
        tmp_path,
        str(good),
        "--commitment",
        good_document["seed_commitment"].upper(),
        "--id",
        winner["registration_id"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"OK: campaign luohu-2020: 60 registrants, 10 winners, "
        f"list_hash {good_document['list_hash']}",
        f"{winner['registration_id']}: drawn at rank 2, prize {winner['prize']}",
    ]
    losers = sorted(
        set(good_document["registrations"])
        - {w["registration_id"] for w in good_document["winners"]}
    )
    result = _run_drawcheck(tmp_path, str(good), "--id", losers[0])
    assert result.stdout.splitlines()[1] == f"{losers[0]}: in the registrant list, not drawn"
    result = _run_drawcheck(tmp_path, str(good), "--id", "reg_nobody")
    assert result.stdout.splitlines()[1] == "reg_nobody: NOT in the registrant list"

    result = _run_drawcheck(tmp_path, str(good), "--commitment", "ab" * 32)
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: the file's seed_commitment is not the one you saved")

    tampered = copy.deepcopy(good_document)
    _swap_prizes(tampered)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered, indent=2))
    result = _run_drawcheck(tmp_path, str(bad))
    assert result.returncode == 1
    assert result.stdout == "FAIL: rank 1: prize 16800 but the prize list gives 52000\n"

    _alter_seed(tampered)
    bad.write_text(json.dumps(tampered))
    result = _run_drawcheck(tmp_path, str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL: seed_commitment is not SHA-256(seed)",
        "(1 more problem(s) after this one)",
    ]

    (tmp_path / "broken.json").write_text("{")
    result = _run_drawcheck(tmp_path, str(tmp_path / "broken.json"))
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: cannot read ")
    assert _run_drawcheck(tmp_path).returncode == 2


# --- the worked example in docs/campaign-draw.md --------------------------------------------


def test_the_worked_example_in_the_docs(tmp_path: Path) -> None:
    text = DOC.read_text()
    example = text[text.index("## Worked example") :]
    seed_match = re.search(r"Seed `([0-9a-f]{64})`", example)
    assert seed_match
    seed = bytes.fromhex(seed_match.group(1))
    document = json.loads(example.split("```json\n", 1)[1].split("```", 1)[0])

    # the inputs as the example states them: six ids in this order, prizes 66, 520, 168 yuan
    ids_match = re.search(r"six registrations ((?:`reg_\w+`,?\s*)+)", example)
    assert ids_match
    ids = re.findall(r"`(reg_\w+)`", ids_match.group(1))
    assert len(ids) == 6
    prizes = [6600, 52000, 16800]
    assert make_document(seed, ids, prizes, campaign_id="demo-2026") == document
    assert both_verdicts(document) == []

    assert f"Seed commitment: `{lottery.commitment(seed)}`" in example
    assert f"list hash `{lottery.list_hash(ids)}`" in example
    listed = re.search(r"SHA-256 of `([^`]+)`", example)
    assert listed
    assert listed.group(1).replace("\\n", "\n") == "".join(f"{i}\n" for i in sorted(ids))
    rows = re.findall(r"^\| `(reg_\w+)` \| `([0-9a-f]{64})` \| (\S+) \| (\S+) \|$", example, re.M)
    assert [row[0] for row in rows] == [
        i for _, i in sorted((lottery.ticket(seed, i), i) for i in ids)
    ]
    for registration_id, ticket, rank, prize in rows:
        assert lottery.ticket(seed, registration_id).hex() == ticket
        won = [w for w in document["winners"] if w["registration_id"] == registration_id]
        assert (rank, prize) == ((str(won[0]["rank"]), str(won[0]["prize"])) if won else ("–", "–"))

    data = lottery.dump_draw_file(document)
    size = re.search(r"canonical form, (\d+) bytes with\s+SHA-256 `([0-9a-f]{64})`", example)
    assert size
    assert (len(data), hashlib.sha256(data).hexdigest()) == (int(size.group(1)), size.group(2))

    # the command-line session shown in "Checking a draw", run for real
    session = text.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    command = shlex.split(session[0].removeprefix("$ "))
    assert command[:3] == ["python", "drawcheck.py", "draw.json"]
    (tmp_path / "draw.json").write_bytes(data)
    result = _run_drawcheck(tmp_path, *command[2:])
    assert result.returncode == 0
    assert result.stdout.splitlines() == session[1:]


# --- size --------------------------------------------------------------------------------------


@pytest.mark.slow  # make mutation leaves it out: it prints timings and asserts what others do
def test_timing_for_200000_registrations(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a benchmark: prints how long 200,000 registrations take (Luohu is ten times that)."""
    ids = [f"reg_{n:08x}" for n in range(200_000)]
    seed = bytes(range(32))
    started = time.perf_counter()
    winners = lottery.draw(seed, ids, [20000] * 5_000)
    drawn = time.perf_counter() - started
    document = lottery.draw_file(
        "timing", seed, lottery.commitment(seed), ids, [20000] * 5_000, winners
    )
    started = time.perf_counter()
    assert lottery.verify_draw(document) == []
    verified = time.perf_counter() - started
    started = time.perf_counter()
    assert drawcheck.check_draw(document) == []
    checked = time.perf_counter() - started
    assert len(winners) == 5_000
    with capsys.disabled():
        print(
            f"\n[campaign lottery] 200,000 registrations, 5,000 prizes: draw {drawn:.2f} s, "
            f"verify_draw {verified:.2f} s, drawcheck {checked:.2f} s"
        )


# --- every refusal in full ---------------------------------------------------------------------

WINNER_SHAPE = (
    "is not an object with exactly an integer rank and prize and a string registration_id "
    "and ticket"
)
MESSAGES: dict[str, tuple[Tamper, str]] = {
    "commitment": (_set(("seed_commitment",), "0" * 64), "seed_commitment is not SHA-256(seed)"),
    "order": (lambda doc: doc["prizes"].reverse(), "prizes are not listed largest first"),
    "campaign": (
        _set(("campaign_id",), 7),
        "malformed draw file: campaign_id is not a non-empty string",
    ),
    "hex": (
        _set(("list_hash",), "F" * 64),
        "malformed draw file: list_hash is not 64 lowercase hex digits",
    ),
    "count": (
        _set(("registrant_count",), "60"),
        "malformed draw file: registrant_count is not a non-negative integer",
    ),
    "registrations": (
        _set(("registrations",), "reg_1"),
        "malformed draw file: registrations is not a list of strings",
    ),
    "prizes": (
        _set(("prizes",), 52000),
        "malformed draw file: prizes is not a list of positive integers",
    ),
    "zero prize": (
        _set(("prizes", 0), 0),
        "malformed draw file: prizes is not a list of positive integers",
    ),
    "winners": (_set(("winners",), {}), "malformed draw file: winners is not a list"),
    "winner": (_set(("winners", 3), []), f"malformed draw file: winners[3] {WINNER_SHAPE}"),
    "rank": (_set(("winners", 0, "rank"), "1"), f"malformed draw file: winners[0] {WINNER_SHAPE}"),
    "id": (
        lambda doc: doc["registrations"].append("reg\tx"),
        "registration id 'reg\\tx' is not 1 to 128 printable ASCII characters without spaces",
    ),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_every_problem_is_reported_in_full(name: str, good_document: dict[str, Any]) -> None:
    tamper, message = MESSAGES[name]
    document = copy.deepcopy(good_document)
    tamper(document)
    assert both_verdicts(document)[0] == message


def test_draw_file_and_draw_refusals_in_full() -> None:
    seed = bytes(range(32))
    with pytest.raises(ValueError, match=r"^the seed does not open the published commitment$"):
        lottery.draw_file("c", seed, lottery.commitment(bytes(32)), ["reg_a"], [1], [])
    for campaign_id in ("", None):
        with pytest.raises(ValueError, match=r"^the campaign id must be a non-empty string$"):
            lottery.draw_file(campaign_id, seed, lottery.commitment(seed), [], [1], [])  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^every prize must be a positive integer amount in minor units$"
    ):
        lottery.draw(seed, ["reg_a"], [0])
    with pytest.raises(ValueError, match=r"^the seed must be 32 bytes$"):
        lottery.draw(seed[:31], ["reg_a"], [1])
    with pytest.raises(ValueError, match=r"^registrant 'reg_a' is listed more than once$"):
        lottery.draw(seed, ["reg_a", "reg_b", "reg_a"], [1])
    with pytest.raises(ValueError, match=r"^registration id 5 is not 1 to 128 printable ASCII"):
        lottery.list_hash(["reg_a", 5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"^registration id 'a b' is not 1 to 128 printable"):
        lottery.ticket(seed, "a b")


def test_registration_ids_at_their_limits() -> None:
    longest = "~" * 128
    assert lottery.is_valid_registration_id(longest)
    assert lottery.is_valid_registration_id("!")
    assert not lottery.is_valid_registration_id(longest + "~")
    assert not lottery.is_valid_registration_id("")
    assert not lottery.is_valid_registration_id("é")
    seed = bytes(range(32))
    assert (
        lottery.ticket(seed, longest) == hmac.new(seed, longest.encode(), hashlib.sha256).digest()
    )
    assert [w.registration_id for w in lottery.draw(seed, [longest, "!"], [5, 5])] == sorted(
        [longest, "!"], key=lambda i: (lottery.ticket(seed, i), i)
    )
    with pytest.raises(ValueError, match=r"is not 1 to 128 printable ASCII characters"):
        lottery.draw(seed, [longest + "~"], [5])


def test_a_prize_of_one_fen_is_a_prize() -> None:
    document = make_document(bytes(range(32)), ["reg_a", "reg_b"], [1, 2])
    assert document["prizes"] == [2, 1]
    assert both_verdicts(document) == []


def test_the_bad_id_is_named_not_the_first_one() -> None:
    with pytest.raises(ValueError, match=r"^registration id 'a b' is not 1 to 128 printable"):
        lottery.draw(bytes(32), ["reg_a", "a b", "reg_c"], [1])
