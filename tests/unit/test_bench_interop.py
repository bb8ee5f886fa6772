"""bench/interop.py's pure parts: percentiles and the summary of a case."""

from __future__ import annotations

import pytest
from bench.interop import Case, Cost, cost_table, parse_args, percentile, table
from rich.console import Console


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([], 99) == 0.0


def test_a_case_summarises_rates_and_stages_in_ms() -> None:
    case = Case("cross", seconds=2.0, done=10, failed=1, errors={"transfer aborted": 1})
    case.samples = {"lookup": [0.010] * 9 + [0.5], "end to end": [0.1] * 10}
    summary = case.summary()
    assert summary["per_second"] == 5.0
    assert summary["stages_ms"]["lookup"] == {"p50": 10.0, "p99": 500.0, "n": 10}
    assert summary["stages_ms"]["end to end"]["p99"] == 100.0
    assert "samples" not in summary


def test_arguments_are_checked() -> None:
    assert parse_args(["--seconds", "10", "--clients", "4"]).clients == 4
    with pytest.raises(SystemExit):
        parse_args(["--cells", "1"])


def test_the_table_puts_end_to_end_first_under_each_case() -> None:
    case = Case("cross", seconds=1.0, done=2)
    case.samples = {"lookup": [0.1, 0.1], "quote": [0.2, 0.2], "end to end": [0.5, 0.5]}
    rows = table([Case("local", 1.0, 3, samples={"end to end": [0.01]}), case], "c").rows
    console = Console(width=200, record=True)
    console.print(table([case], "caption"))
    lines = [line for line in console.export_text().splitlines() if "│" in line]
    assert "cross" in lines[0]
    assert "end to end" in lines[0]
    assert ["lookup" in lines[1], "quote" in lines[2]] == [True, True]
    assert len(rows) == 4


def test_the_cost_table_has_a_column_per_process_and_the_total() -> None:
    cost = Cost("cross", n=10, seconds=1.0, cpu_ms={"switch": 30.0, "cell-1": 45.5},
                transactions={"switch": 9.0, "cell-1": 14.0})  # fmt: skip
    summary = cost.summary()
    assert (summary["cpu_ms_total"], summary["transactions_total"]) == (75.5, 23.0)
    console = Console(width=200, record=True)
    console.print(cost_table([cost]))
    text = console.export_text()
    for shown in ("switch CPU ms / tx", "30.0 / 9.0", "75.5 / 23.0"):
        assert shown in text
    assert "100.0" in text  # ms each: 1 s over 10 payments
