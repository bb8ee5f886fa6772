"""The campaign lottery: commit–reveal, so that anyone can recompute the winners.

A city hands money to a few percent of about two million registrants (Luohu 2020: 50,000
winners out of 1,913,847). A draw that nobody outside can check invites the suspicion that it
was rigged, so the draw leaves the operator nothing to choose once registration has opened:

- before registration opens the campaign publishes ``SHA-256(seed)`` for a secret random
  32-byte seed (:func:`new_seed`, :func:`commitment`);
- after registration closes it publishes the seed, the hash of the final registrant list
  (:func:`list_hash`) and a draw file (:func:`draw_file`) holding the list itself;
- every registration's ticket is ``HMAC-SHA256(key=seed, msg=registration id)``; the K lowest
  tickets win (K = the number of prizes), and the winner of rank r gets the r-th largest prize.

The commitment stops the operator from picking a seed after seeing the list, the published
list lets every registrant see that they took part, and anyone can recompute the rest.
The format is specified byte for byte in ``docs/campaign-draw.md``; ``drawcheck.py`` next to
this file checks a draw file on its own (it shares no code with this module on purpose).

Pure: no database, no clock, standard library only. :func:`draw` is sized for the Luohu case:
two million registrations, 50,000 prizes, a few seconds in one process.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import operator
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMAT = "citywallet-campaign-draw/1"
SEED_BYTES = 32
MAX_ID_LENGTH = 128
_ID_CHARS = bytes(range(0x21, 0x7F))  # printable ASCII without the space
_HEX = frozenset("0123456789abcdef")
_SHA256_BLOCK = 64
_TICKET_BYTES = 32
_IPAD = bytes(b ^ 0x36 for b in range(256))  # RFC 2104 inner and outer pads as byte tables
_OPAD = bytes(b ^ 0x5C for b in range(256))
_FIELDS = (
    "campaign_id", "seed_commitment", "seed", "list_hash", "registrant_count", "registrations",
    "prizes", "winners",
)  # fmt: skip
_WINNER_FIELDS = {"rank": int, "registration_id": str, "ticket": str, "prize": int}


@dataclass(frozen=True, slots=True)
class Winner:
    """One drawn registration: rank 1 has the lowest ticket; the prize is in minor units."""

    rank: int
    registration_id: str
    ticket: str  # 64 lowercase hex digits
    prize: int

    def as_json(self) -> dict[str, Any]:
        """The winner as it appears in a draw file."""
        return {
            "rank": self.rank,
            "registration_id": self.registration_id,
            "ticket": self.ticket,
            "prize": self.prize,
        }


def new_seed() -> bytes:
    """A fresh secret seed: 32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def commitment(seed: bytes) -> str:
    """The published commitment to a seed: SHA-256(seed), 64 lowercase hex digits."""
    _check_seed(seed)
    return hashlib.sha256(seed).hexdigest()


def is_valid_registration_id(value: object) -> bool:
    """True for 1–128 printable ASCII characters without spaces (0x21–0x7E)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and not value.encode("ascii").translate(None, _ID_CHARS)
    )


def list_hash(registration_ids: Iterable[str]) -> str:
    """SHA-256 over the ids in ascending byte order, each followed by a line feed."""
    ids = _sorted_ids(registration_ids)
    encoded = _encode_ids(ids)
    _refuse_duplicates(ids)
    return _list_hash_of_sorted(encoded)


def ticket(seed: bytes, registration_id: str) -> bytes:
    """A registration's ticket: HMAC-SHA256(key=seed, msg=ASCII registration id)."""
    _check_seed(seed)
    if not is_valid_registration_id(registration_id):
        raise ValueError(_bad_id_message(registration_id))
    return hmac.new(seed, registration_id.encode("ascii"), hashlib.sha256).digest()


def draw(seed: bytes, registration_ids: Sequence[str], prizes: Sequence[int]) -> list[Winner]:
    """The winners: the min(K, N) lowest tickets, ties by id; rank r gets the r-th largest prize.

    ``prizes`` holds one amount (minor units, > 0) per prize, in any order. Raises
    ``ValueError`` on a bad seed, a bad or repeated registration id, or a bad prize.
    """
    _check_seed(seed)
    ranked_prizes = _canonical_prizes(prizes)
    ids = list(registration_ids)
    encoded = _encode_ids(ids)
    if len(set(ids)) != len(ids):
        _refuse_duplicates(sorted(ids))
    return _draw(seed, encoded, ranked_prizes)


def ranking(
    seed: bytes, registration_ids: Sequence[str], prizes: Sequence[int]
) -> tuple[list[Winner], list[int]]:
    """The draw and every registration's position: ``(winners, positions)``.

    ``winners`` is exactly :func:`draw`; ``positions[i]`` is the place of
    ``registration_ids[i]`` among all tickets (1 = the lowest ticket, ties by id), so the
    first K positions are the winners' ranks. Stored at the draw, the positions let a
    resident's page show their place without hashing every registration again.
    """
    _check_seed(seed)
    ranked_prizes = _canonical_prizes(prizes)
    ids = list(registration_ids)
    encoded = _encode_ids(ids)
    if len(set(ids)) != len(ids):
        _refuse_duplicates(sorted(ids))
    key_of = _sort_key(seed)
    keys = list(map(key_of, encoded))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    positions = [0] * len(keys)
    for position, index in enumerate(order, start=1):
        positions[index] = position
    count = min(len(ranked_prizes), len(keys))
    winners = [
        _winner(rank, keys[index], ranked_prizes) for rank, index in enumerate(order[:count], 1)
    ]
    return winners, positions


def draw_file(
    campaign_id: str,
    seed: bytes,
    commitment: str,
    registration_ids: Iterable[str],
    prizes: Sequence[int],
    winners: Sequence[Winner],
) -> dict[str, Any]:
    """The published draw file (a JSON-ready dict); check it with :func:`verify_draw` first.

    ``commitment`` is the one published before registration opened and must open with
    ``seed``; the registrations are written in ascending order and the prizes largest first.
    The winners are written as given (e.g. as stored), not recomputed.
    """
    if not isinstance(campaign_id, str) or not campaign_id:
        raise ValueError("the campaign id must be a non-empty string")
    _check_seed(seed)
    if hashlib.sha256(seed).hexdigest() != commitment:
        raise ValueError("the seed does not open the published commitment")
    ids = _sorted_ids(registration_ids)
    encoded = _encode_ids(ids)
    _refuse_duplicates(ids)
    return {
        "format": FORMAT,
        "campaign_id": campaign_id,
        "seed_commitment": commitment,
        "seed": seed.hex(),
        "list_hash": _list_hash_of_sorted(encoded),
        "registrant_count": len(ids),
        "registrations": ids,
        "prizes": _canonical_prizes(prizes),
        "winners": [winner.as_json() for winner in winners],
    }


def dump_draw_file(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a draw file: sorted keys, no whitespace, ASCII, final newline."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def verify_draw(document: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a draw file, most basic first; an empty list means it checks out."""
    malformed = _malformed(document)
    if malformed:
        return [malformed]
    problems: list[str] = []
    seed = bytes.fromhex(document["seed"])
    if hashlib.sha256(seed).hexdigest() != document["seed_commitment"]:
        problems.append("seed_commitment is not SHA-256(seed)")
    ids = sorted(document["registrations"])
    try:
        encoded = _encode_ids(ids)
        _refuse_duplicates(ids)
    except ValueError as exc:
        return [*problems, str(exc)]
    if document["registrant_count"] != len(ids):
        problems.append(
            f"registrant_count is {document['registrant_count']} "
            f"but {len(ids)} registrations are listed"
        )
    recomputed_hash = _list_hash_of_sorted(encoded)
    if document["list_hash"] != recomputed_hash:
        problems.append(
            f"list_hash does not match the registrations (recomputed {recomputed_hash})"
        )
    prizes: list[int] = document["prizes"]
    ranked_prizes = sorted(prizes, reverse=True)
    if prizes != ranked_prizes:
        problems.append("prizes are not listed largest first")
    expected = _draw(seed, encoded, ranked_prizes)
    listed: list[dict[str, Any]] = document["winners"]
    for rank, (got, want) in enumerate(zip(listed, expected, strict=False), start=1):
        problem = _winner_problem(rank, got, want)
        if problem:
            problems.append(problem)
            break
    if len(listed) != len(expected):
        problems.append(
            f"{len(listed)} winners are listed but the draw gives {len(expected)} "
            f"(the smaller of {len(prizes)} prizes and {len(ids)} registrants)"
        )
    return problems


# --- internals ----------------------------------------------------------------------------


def _check_seed(seed: bytes) -> None:
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise ValueError(f"the seed must be {SEED_BYTES} bytes")


def _canonical_prizes(prizes: Sequence[int]) -> list[int]:
    if not all(type(prize) is int and prize > 0 for prize in prizes):
        raise ValueError("every prize must be a positive integer amount in minor units")
    return sorted(prizes, reverse=True)


def _bad_id_message(value: object) -> str:
    return (
        f"registration id {value!r} is not 1 to {MAX_ID_LENGTH} printable ASCII characters "
        "without spaces"
    )


def _encode_ids(ids: Sequence[str]) -> list[bytes]:
    """The ids as ASCII bytes, in the same order; checked in bulk, so quick for millions."""
    try:
        joined = "\n".join(ids)
    except TypeError:
        joined = "\udc80"  # not all strings: take the one-by-one path below
    if joined.isascii():
        data = joined.encode("ascii")
        encoded = data.split(b"\n") if ids else []
        if (
            len(encoded) == len(ids)  # no line feed inside an id
            and not data.translate(None, _ID_CHARS + b"\n")
            and b"" not in encoded
            and max(map(len, encoded), default=0) <= MAX_ID_LENGTH
        ):
            return encoded
    first_bad = next(value for value in ids if not is_valid_registration_id(value))
    raise ValueError(_bad_id_message(first_bad))


def _sorted_ids(ids: Iterable[str]) -> list[str]:
    values = list(ids)
    try:
        return sorted(values)
    except TypeError:  # something other than strings
        first_bad = next(value for value in values if not isinstance(value, str))
        raise ValueError(_bad_id_message(first_bad)) from None


def _refuse_duplicates(sorted_ids: Sequence[str]) -> None:
    if any(itertools.starmap(operator.eq, itertools.pairwise(sorted_ids))):
        first = next(a for a, b in itertools.pairwise(sorted_ids) if a == b)
        raise ValueError(f"registrant {first!r} is listed more than once")


def _list_hash_of_sorted(encoded: Sequence[bytes]) -> str:
    digest = hashlib.sha256(b"\n".join(encoded))
    if encoded:
        digest.update(b"\n")
    return digest.hexdigest()


def _sort_key(seed: bytes) -> Callable[[bytes], bytes]:
    """A registration's sort key, ticket ‖ id (one bytes object: by ticket, then by id).

    HMAC (RFC 2104) with the two key-dependent SHA-256 states computed once: copying a hash
    state is several times faster than setting up an HMAC per registration.
    """
    key_block = seed.ljust(_SHA256_BLOCK, b"\0")
    inner_copy = hashlib.sha256(key_block.translate(_IPAD)).copy
    outer_copy = hashlib.sha256(key_block.translate(_OPAD)).copy

    def key_of(message: bytes) -> bytes:
        inner_hash = inner_copy()
        inner_hash.update(message)
        outer_hash = outer_copy()
        outer_hash.update(inner_hash.digest())
        return outer_hash.digest() + message

    return key_of


def _winner(rank: int, key: bytes, ranked_prizes: Sequence[int]) -> Winner:
    return Winner(
        rank=rank,
        registration_id=key[_TICKET_BYTES:].decode("ascii"),
        ticket=key[:_TICKET_BYTES].hex(),
        prize=ranked_prizes[rank - 1],
    )


def _draw(seed: bytes, encoded: Sequence[bytes], ranked_prizes: Sequence[int]) -> list[Winner]:
    """Rank the registrations (valid, distinct ids as ASCII bytes) and hand out the prizes."""
    count = min(len(ranked_prizes), len(encoded))
    if count == 0:
        return []
    # Keep the keys below a cut; whenever 2 × count have piled up, keep the best count and
    # lower the cut to the worst of them. Cheaper than a heap: few keys ever pass the cut.
    cut = b"\xff" * (_TICKET_BYTES + 1)  # above every key: id bytes are at most 0x7e
    best: list[bytes] = []
    for key in map(_sort_key(seed), encoded):
        if key < cut:
            best.append(key)
            if len(best) == 2 * count:
                best.sort()
                del best[count:]
                cut = best[-1]
    best.sort()
    del best[count:]
    return [_winner(rank, key, ranked_prizes) for rank, key in enumerate(best, start=1)]


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def _is_int(value: object) -> bool:
    return type(value) is int


def _malformed(document: object) -> str | None:
    """Why the document cannot be read as a draw file, or None."""
    if not isinstance(document, Mapping):
        return "malformed draw file: not a JSON object"
    if document.get("format") != FORMAT:
        return f"unknown format {document.get('format')!r} (expected {FORMAT!r})"
    for name in _FIELDS:
        if name not in document:
            return f"malformed draw file: missing {name!r}"
    campaign_id = document["campaign_id"]
    if not isinstance(campaign_id, str) or not campaign_id:
        return "malformed draw file: campaign_id is not a non-empty string"
    for name in ("seed_commitment", "seed", "list_hash"):
        if not _is_hex64(document[name]):
            return f"malformed draw file: {name} is not 64 lowercase hex digits"
    count = document["registrant_count"]
    if not _is_int(count) or count < 0:
        return "malformed draw file: registrant_count is not a non-negative integer"
    registrations = document["registrations"]
    if not isinstance(registrations, list) or not all(isinstance(r, str) for r in registrations):
        return "malformed draw file: registrations is not a list of strings"
    prizes = document["prizes"]
    if not isinstance(prizes, list) or not all(_is_int(p) and p > 0 for p in prizes):
        return "malformed draw file: prizes is not a list of positive integers"
    winners = document["winners"]
    if not isinstance(winners, list):
        return "malformed draw file: winners is not a list"
    for index, winner in enumerate(winners):
        if not (
            isinstance(winner, Mapping)
            and set(winner) == set(_WINNER_FIELDS)
            and all(type(winner[field]) is kind for field, kind in _WINNER_FIELDS.items())
        ):
            return (
                f"malformed draw file: winners[{index}] is not an object with exactly an "
                "integer rank and prize and a string registration_id and ticket"
            )
    return None


def _winner_problem(rank: int, got: Mapping[str, Any], want: Winner) -> str | None:
    if got["rank"] != rank:
        return f"winners[{rank - 1}] has rank {got['rank']}, expected {rank}"
    if got["registration_id"] != want.registration_id:
        return (
            f"rank {rank}: the file names {got['registration_id']!r} "
            f"but the recomputed winner is {want.registration_id!r}"
        )
    if got["ticket"] != want.ticket:
        return f"rank {rank}: ticket {got['ticket']!r} is not HMAC-SHA256(seed, registration id)"
    if got["prize"] != want.prize:
        return f"rank {rank}: prize {got['prize']} but the prize list gives {want.prize}"
    return None
