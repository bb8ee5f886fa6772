"""`citywallet cells up` (cli_cells.py) with the launcher stood in for: the options reach
:class:`Cells`, the panel lists every process and login, bad fault specs exit 2, a failed
start exits 1 (tests/integration/test_cells_launcher.py runs the real launcher)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console
from typer.testing import CliRunner

from citywallet import cli, cli_cells
from citywallet.interop.cells import Cell, Merchant, Process, Resident
from citywallet.interop.faultproxy import FaultRates
from citywallet.platform.config import get_settings


class _FakeCells:
    made: ClassVar[list[dict[str, Any]]] = []
    fail = False

    def __init__(self, n: int, **options: Any) -> None:
        self.made.append({"n": n, **options, "instance": self})
        self.n = n
        self.rates = options["proxy"]
        log = Path("switch.log")
        self.switch = Process("switch", ["x"], {}, 8100, log)
        self.switch_url = "http://127.0.0.1:8150"
        self.switch_database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/cw_switch"
        self.switch_public_key = "c3dpdGNoLWtleQ=="
        process = Process("cell-1", ["x"], {}, 8101, Path("cell-1.log"))
        cell = Cell(1, "cell-1", process, "postgresql:///cw_cell_1", Path("v"),
                    "http://127.0.0.1:8151/fspiop")  # fmt: skip
        cell.residents.append(Resident("cell-1", "13901000001", "usr_1", "t", "card", 100_000))
        if options.get("merchants"):
            owner = Resident("cell-1", "13901009001", "usr_2", "t", "card", 0)
            cell.merchants.append(
                Merchant("cell-1", "mch_Shop1", owner, "key_Shop1", "s3cret", "sto_1", "000201")
            )
        self.cells = [cell]
        self.exited = False

    def __enter__(self) -> _FakeCells:
        if self.fail:
            raise RuntimeError("switch exited: boom")
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    _FakeCells.made = []
    _FakeCells.fail = False
    monkeypatch.setattr(cli_cells, "Cells", _FakeCells)
    monkeypatch.setattr(cli_cells, "_wait", lambda stop: None)
    monkeypatch.setattr(cli_cells, "console", Console(width=250))  # no wrapped URLs
    return CliRunner()


def test_cells_up_starts_prints_every_process_and_login_and_stops(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli.app,
        ["cells", "up", "1", "--base-port", "8100", "--prefix", "cwx", "--residents", "1",
         "--fault", "drop_request=0.1,duplicate=0.2,seed=3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (made,) = _FakeCells.made
    assert made["n"] == 1
    assert made["instance"].exited  # every process stopped
    assert (made["base_port"], made["prefix"], made["residents"]) == (8100, "cwx", 1)
    assert made["proxy"] == FaultRates(drop_request=0.1, duplicate=0.2, seed=3)
    assert made["workdir"] == tmp_path / "var" / "cells" / "cwx"
    for text in ("http://127.0.0.1:8100", "http://127.0.0.1:8151/fspiop", "cw_cell_1",
                 "13901000001", "Cells-wallet-2026", "502817", "c3dpdGNoLWtleQ==",
                 "drop_request=0.1", "stopping"):  # fmt: skip
        assert text in result.output, text
    get_settings.cache_clear()


def test_cells_up_with_merchants_prints_their_logins(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["cells", "up", "1", "--merchants", "2"])
    assert result.exit_code == 0, result.output
    (made,) = _FakeCells.made
    assert made["merchants"] == 2
    for text in ("mch_Shop1", "13901009001", "key_Shop1", "s3cret"):
        assert text in result.output, text
    get_settings.cache_clear()


def test_cells_up_without_merchants_seeds_none_and_prints_no_merchant_table(
    runner: CliRunner,
) -> None:
    result = runner.invoke(cli.app, ["cells", "up", "1"])
    assert result.exit_code == 0, result.output
    assert _FakeCells.made[0]["merchants"] == 0
    assert "mch_" not in result.output
    get_settings.cache_clear()


def test_a_bad_fault_spec_exits_2_before_anything_starts(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["cells", "up", "2", "--fault", "drop=0.5"])
    assert result.exit_code == 2
    assert "unknown fault" in result.output
    assert _FakeCells.made == []
    get_settings.cache_clear()


def test_a_failed_start_exits_1_with_the_reason(runner: CliRunner) -> None:
    _FakeCells.fail = True
    result = runner.invoke(cli.app, ["cells", "up", "2"])
    assert result.exit_code == 1
    assert "switch exited: boom" in result.output
    get_settings.cache_clear()
