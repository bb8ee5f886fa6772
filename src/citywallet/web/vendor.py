"""Front-end packages served from ``node_modules`` (installed by ``npm ci`` from the
repository's package-lock.json; never copied into the repository).

Only the built files a page needs are reachable, each package under ``/vendor/<name>/``:

- ``barcode-detector``: the BarcodeDetector ponyfill (its IIFE build, MIT), which the scan
  page loads where the browser has no BarcodeDetector of its own (iPhone Safari, desktop
  browsers);
- ``zxing-wasm``: ZXing-C++ compiled to WebAssembly (MIT), the reader the ponyfill runs.
  By default the ponyfill fetches it from a CDN; ``pay.js`` points it here instead.

``CITYWALLET_NODE_MODULES`` names another ``node_modules`` folder (default: the one at the
root of the checkout). A missing folder answers 404 and the scan page keeps its upload and
paste fallbacks.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

PREFIX = "/vendor"
# The package's folder of built files, per public name.
PACKAGES = {
    "barcode-detector": "barcode-detector/dist/iife",
    "zxing-wasm": "zxing-wasm/dist/reader",
}


def node_modules() -> Path:
    """Where ``npm ci`` put the packages."""
    configured = os.environ.get("CITYWALLET_NODE_MODULES")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "node_modules"


def install(app: FastAPI) -> None:
    """Serve each package's built files at ``/vendor/<name>/``."""
    root = node_modules()
    for name, folder in PACKAGES.items():
        app.mount(
            f"{PREFIX}/{name}",
            StaticFiles(directory=root / folder, check_dir=False),
            name=f"vendor-{name}",
        )
