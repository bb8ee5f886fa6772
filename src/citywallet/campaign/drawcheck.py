"""Check a CityWallet campaign draw file: ``python drawcheck.py DRAWFILE``.

This file is meant to be copied and run by anyone, so it imports nothing from CityWallet and
nothing outside the Python standard library (Python 3.10 or newer). It recomputes a published
draw from the seed and the registrant list in the file and prints ``OK`` or the first
discrepancy; the exit status is 0 when the draw checks out and 1 when it does not (2 for a
wrong command line). The format is specified in ``docs/campaign-draw.md``.

It is written separately from ``citywallet.campaign.lottery`` on purpose (a plain HMAC per
registration and a heap rather than that module's faster tricks), so a mistake in either shows
up as a disagreement; the project's tests check that both give the same verdicts.

Keep the seed commitment that the campaign published before registration opened and pass it
with ``--commitment``: the file alone cannot show that its commitment is the early one.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import itertools
import json
import sys
from collections.abc import Iterator
from typing import Any

FORMAT = "citywallet-campaign-draw/1"
TOP_LEVEL = (
    "campaign_id", "seed_commitment", "seed", "list_hash", "registrant_count", "registrations",
    "prizes", "winners",
)  # fmt: skip
WINNER_KEYS = ("prize", "rank", "registration_id", "ticket")
ID_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F))
LOWER_HEX = frozenset("0123456789abcdef")


def check_draw(doc: Any) -> list[str]:
    """All problems found in a parsed draw file, most basic first; empty when it checks out."""
    shape = shape_problem(doc)
    if shape is not None:
        return [shape]
    problems = []
    seed = bytes.fromhex(doc["seed"])
    if hashlib.sha256(seed).hexdigest() != doc["seed_commitment"]:
        problems.append("seed_commitment is not SHA-256(seed)")

    registrations = sorted(doc["registrations"])
    for registration_id in registrations:
        if not (1 <= len(registration_id) <= 128 and ID_CHARACTERS.issuperset(registration_id)):
            return [
                *problems,
                f"registration id {registration_id!r} is not 1 to 128 printable ASCII "
                "characters without spaces",
            ]
    for before, after in itertools.pairwise(registrations):
        if before == after:
            return [*problems, f"registrant {after!r} is listed more than once"]
    if doc["registrant_count"] != len(registrations):
        problems.append(
            f"registrant_count is {doc['registrant_count']} "
            f"but {len(registrations)} registrations are listed"
        )
    listed_ids = hashlib.sha256()
    for registration_id in registrations:
        listed_ids.update(registration_id.encode("ascii") + b"\n")
    if listed_ids.hexdigest() != doc["list_hash"]:
        problems.append(
            f"list_hash does not match the registrations (recomputed {listed_ids.hexdigest()})"
        )

    prizes = doc["prizes"]
    prizes_largest_first = sorted(prizes, reverse=True)
    if prizes != prizes_largest_first:
        problems.append("prizes are not listed largest first")
    expected = recompute_winners(seed, registrations, prizes_largest_first)
    winners = doc["winners"]
    for rank, (got, want) in enumerate(zip(winners, expected, strict=False), 1):
        difference = compare_winner(rank, got, *want)
        if difference is not None:
            problems.append(difference)
            break
    if len(winners) != len(expected):
        problems.append(
            f"{len(winners)} winners are listed but the draw gives {len(expected)} "
            f"(the smaller of {len(prizes)} prizes and {len(registrations)} registrants)"
        )
    return problems


def recompute_winners(
    seed: bytes, registrations: list[str], prizes_largest_first: list[int]
) -> list[tuple[str, str, int]]:
    """(ticket hex, registration id, prize) of each winner, rank 1 first."""
    keyed = hmac.new(seed, digestmod=hashlib.sha256)

    def tickets() -> Iterator[tuple[bytes, str]]:
        for registration_id in registrations:
            mac = keyed.copy()
            mac.update(registration_id.encode("ascii"))
            yield mac.digest(), registration_id

    how_many = min(len(prizes_largest_first), len(registrations))
    lowest = heapq.nsmallest(how_many, tickets())  # by ticket, then by id
    return [
        (ticket.hex(), registration_id, prizes_largest_first[index])
        for index, (ticket, registration_id) in enumerate(lowest)
    ]


def compare_winner(
    rank: int, got: dict[str, Any], ticket: str, registration_id: str, prize: int
) -> str | None:
    """How a listed winner differs from the recomputed one at the same rank, or None."""
    if got["rank"] != rank:
        return f"winners[{rank - 1}] has rank {got['rank']}, expected {rank}"
    if got["registration_id"] != registration_id:
        return (
            f"rank {rank}: the file names {got['registration_id']!r} "
            f"but the recomputed winner is {registration_id!r}"
        )
    if got["ticket"] != ticket:
        return f"rank {rank}: ticket {got['ticket']!r} is not HMAC-SHA256(seed, registration id)"
    if got["prize"] != prize:
        return f"rank {rank}: prize {got['prize']} but the prize list gives {prize}"
    return None


def shape_problem(doc: Any) -> str | None:
    """Why ``doc`` cannot be read as a draw file at all, or None."""
    if not isinstance(doc, dict):
        return "malformed draw file: not a JSON object"
    if doc.get("format") != FORMAT:
        return f"unknown format {doc.get('format')!r} (expected {FORMAT!r})"
    for key in TOP_LEVEL:
        if key not in doc:
            return f"malformed draw file: missing {key!r}"
    if not isinstance(doc["campaign_id"], str) or doc["campaign_id"] == "":
        return "malformed draw file: campaign_id is not a non-empty string"
    for key in ("seed_commitment", "seed", "list_hash"):
        value = doc[key]
        if not (isinstance(value, str) and len(value) == 64 and LOWER_HEX.issuperset(value)):
            return f"malformed draw file: {key} is not 64 lowercase hex digits"
    if not is_integer(doc["registrant_count"]) or doc["registrant_count"] < 0:
        return "malformed draw file: registrant_count is not a non-negative integer"
    registrations = doc["registrations"]
    if not isinstance(registrations, list) or any(not isinstance(r, str) for r in registrations):
        return "malformed draw file: registrations is not a list of strings"
    prizes = doc["prizes"]
    if not isinstance(prizes, list) or any(not is_integer(p) or p <= 0 for p in prizes):
        return "malformed draw file: prizes is not a list of positive integers"
    winners = doc["winners"]
    if not isinstance(winners, list):
        return "malformed draw file: winners is not a list"
    for index, winner in enumerate(winners):
        if not (
            isinstance(winner, dict)
            and sorted(winner) == list(WINNER_KEYS)
            and is_integer(winner["rank"])
            and is_integer(winner["prize"])
            and isinstance(winner["registration_id"], str)
            and isinstance(winner["ticket"], str)
        ):
            return (
                f"malformed draw file: winners[{index}] is not an object with exactly an "
                "integer rank and prize and a string registration_id and ticket"
            )
    return None


def is_integer(value: Any) -> bool:
    """A JSON integer (``true`` and ``false`` are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def main(argv: list[str] | None = None) -> int:
    """Command line: check DRAWFILE, print OK or the first discrepancy, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="drawcheck.py", description="Recompute a CityWallet campaign draw and check it."
    )
    parser.add_argument("drawfile", help="the published draw file (JSON)")
    parser.add_argument(
        "--commitment",
        metavar="HEX",
        help="the seed commitment published before registration opened (the file must match)",
    )
    parser.add_argument(
        "--id",
        dest="registration_id",
        metavar="REGISTRATION_ID",
        help="also tell whether this registration is listed and what it won",
    )
    args = parser.parse_args(argv)
    try:
        with open(args.drawfile, "rb") as file:
            doc = json.load(file)
    except (OSError, ValueError) as exc:
        print(f"FAIL: cannot read {args.drawfile}: {exc}")
        return 1
    problems = check_draw(doc)
    if args.commitment is not None and isinstance(doc, dict):
        saved = args.commitment.strip().lower()
        if doc.get("seed_commitment") != saved:
            problems.insert(0, f"the file's seed_commitment is not the one you saved ({saved})")
    if problems:
        print(f"FAIL: {problems[0]}")
        if len(problems) > 1:
            print(f"({len(problems) - 1} more problem(s) after this one)")
        return 1
    print(
        f"OK: campaign {doc['campaign_id']}: {doc['registrant_count']} registrants, "
        f"{len(doc['winners'])} winners, list_hash {doc['list_hash']}"
    )
    if args.registration_id is not None:
        print(describe_registration(doc, args.registration_id))
    return 0


def describe_registration(doc: dict[str, Any], registration_id: str) -> str:
    """One line about one registration in a draw file that checks out."""
    for winner in doc["winners"]:
        if winner["registration_id"] == registration_id:
            return f"{registration_id}: drawn at rank {winner['rank']}, prize {winner['prize']}"
    if registration_id in doc["registrations"]:
        return f"{registration_id}: in the registrant list, not drawn"
    return f"{registration_id}: NOT in the registrant list"


if __name__ == "__main__":
    sys.exit(main())
