"""Copy the README's two screenshots from the last e2e run (test-artifacts/e2e, written by
`make test`) into docs/img, cut to the first screen and made small.

    .venv/bin/python scripts/readme_screenshots.py

The resident app: the home page on a phone, in Chinese; a console: the operator console's
home on a desktop, in Chinese. Our own pages only."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "e2e"
# (glob under SHOTS, target, the first screen's height / width, width to scale to)
WANTED = [
    ("test_newcomer_*_sqlite_/*-home.zh_CN.phone.png", "app-home.png", 667 / 375, 300),
    ("test_one_operator_proposes_*_sqlite_/*-operator-home.zh_CN.desktop.png", "operator-console.png", 0.62, 640),
]


def main() -> int:
    for pattern, target, aspect, width in WANTED:
        found = sorted(SHOTS.glob(pattern))
        if not found:
            print(f"no screenshot matches {pattern}: run make test first", file=sys.stderr)
            return 1
        with Image.open(found[0]) as shot:
            height = min(shot.height, round(shot.width * aspect))
            screen = shot.crop((0, 0, shot.width, height))
            scaled = screen.resize((width, round(height * width / shot.width)))
            small = scaled.convert("RGB").quantize(colors=128)
            small.save(ROOT / "docs" / "img" / target, optimize=True)
        print(f"{found[0].relative_to(ROOT)} -> docs/img/{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
