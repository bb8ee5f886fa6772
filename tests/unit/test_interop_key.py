"""The FSPIOP signing key: generated once in sandbox mode and kept, never in production."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from citywallet.platform.config import Settings
from citywallet.platform.crypto import MissingKeys, interop_seed


def test_sandbox_generates_the_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, master_keys="", sandbox=True)
    first = interop_seed(settings)
    assert len(first) == 32
    assert interop_seed(settings) == first  # read back from the key file, not drawn again


def test_a_configured_key_wins(tmp_path: Path) -> None:
    seed = bytes(range(32))
    settings = Settings(var_dir=tmp_path, sandbox=True, interop_key=base64.b64encode(seed).decode())
    assert interop_seed(settings) == seed


def test_production_never_generates_one(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, master_keys="", sandbox=False)
    with pytest.raises(MissingKeys, match="interop key"):
        interop_seed(settings)
    assert (
        not (tmp_path / "keys.json").exists()
        or "interop" not in (tmp_path / "keys.json").read_text()
    )
