"""Per-module kill rates of the last ``mutmut run`` (make mutation; docs/testing.md).

Reads mutmut's result files (``mutants/**/*.py.meta``) and prints, for each mutated module,
how many mutants were killed, survived or had no test, and the kill rate: killed (a test
failed or timed out) over every mutant checked, so a mutant no test reaches counts as a
survivor; mutants not checked yet (an interrupted run) are left out and shown apart.
Exits 1 if a module is below ``--fail-under`` percent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

DETECTED = {"killed", "timeout", "caught by type check"}
UNDETECTED = {"survived", "no tests", "suspicious", "segfault"}


def module_counts(meta: Path) -> Counter[str]:
    """How many mutants of one module ended in each status."""
    exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    return Counter(status_by_exit_code[code] for code in exit_codes.values())


def main() -> int:
    """Print the table; exit 1 if a checked module falls below ``--fail-under``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--fail-under", type=float, default=95.0)
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    args = parser.parse_args()
    root = args.mutants / "src"
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("No mutmut results: run `make mutation` first.", file=sys.stderr)
        return 1
    below = []
    header = f"{'module':<24}{'mutants':>8}{'checked':>8}{'killed':>8}{'survived':>9}{'no test':>8}"
    print(header + f"{'rate':>8}")
    for meta in metas:
        module = meta.relative_to(root / "citywallet").as_posix().removesuffix(".meta")
        counts = module_counts(meta)
        killed = sum(counts[s] for s in DETECTED)
        missed = sum(counts[s] for s in UNDETECTED)
        checked = killed + missed
        total = sum(counts.values())
        if checked == 0:
            print(f"{module:<24}{total:>8}{0:>8}   (not run yet)")
            continue
        rate = 100 * killed / checked
        print(
            f"{module:<24}{total:>8}{checked:>8}{killed:>8}{missed - counts['no tests']:>9}"
            f"{counts['no tests']:>8}{rate:>7.1f}%"
        )
        if rate < args.fail_under:
            below.append(module)
        if args.survivors:
            exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            for name, code in sorted(exit_codes.items()):
                if status_by_exit_code[code] in UNDETECTED:
                    print(f"    {status_by_exit_code[code]:<9} {name}")
    if below:
        print(f"Below {args.fail_under:g} %: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
