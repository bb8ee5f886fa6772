"""The benchmarks' pure helpers: the run's identity, RSS summaries, py-spy commands, wrk output,
the payments table and its request lines (bench/tools.py, bench/payments.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench import payments, tools
from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant import paycode, signing

MIB = tools.MIB


# --- the run's identity ------------------------------------------------------------------------


def test_commit_label_marks_a_dirty_tree() -> None:
    assert tools.commit_label("abc1234", "") == "abc1234"
    assert tools.commit_label("abc1234", " M src/x.py\n") == "abc1234+dirty"
    assert tools.commit_label("abc1234", None) == "abc1234"
    assert tools.commit_label(None, " M src/x.py") is None
    assert tools.commit_label("", "") is None


def test_git_commit_of_this_checkout_is_a_short_sha() -> None:
    label = tools.git_commit(Path(__file__).resolve().parents[2])
    assert label is not None
    sha = label.removesuffix("+dirty")
    assert 7 <= len(sha) <= 12
    assert all(c in "0123456789abcdef" for c in sha)


def test_run_caption_names_commit_cores_loads_and_baseline() -> None:
    caption = tools.run_caption(
        commit="abc1234+dirty",
        load_before=[0.1, 0.25, 1.0],
        load_after=[2.0, 1.5, 1.25],
        cores=2,
        baseline="GET /healthz",
    )
    assert "commit abc1234+dirty" in caption
    assert "2 cores" in caption
    assert "before 0.10/0.25/1.00" in caption
    assert "after 2.00/1.50/1.25" in caption
    assert "GET /healthz of the same run" in caption


def test_run_caption_without_git_or_loads_says_so() -> None:
    caption = tools.run_caption(
        commit=None, load_before=[], load_after=None, cores=None, baseline="raw SQL"
    )
    assert "commit unknown" in caption
    assert "? cores" in caption
    assert "before ?" in caption
    assert "after (running)" in caption


def test_machine_and_load_average() -> None:
    assert tools.machine()["cores"] == os.cpu_count()
    assert len(tools.load_average()) in (0, 3)


# --- memory ------------------------------------------------------------------------------------

STATUS = """Name:\tpython
VmPeak:\t  300000 kB
VmRSS:\t  123456 kB
Threads:\t4
"""


def test_parse_vmrss_reads_kilobytes() -> None:
    assert tools.parse_vmrss(STATUS) == 123456 * 1024


def test_parse_vmrss_without_the_line_is_none() -> None:
    assert tools.parse_vmrss("Name:\tkthreadd\nThreads:\t1\n") is None


def test_rss_of_this_process_and_of_no_process() -> None:
    mine = tools.rss_bytes(os.getpid())
    assert mine is not None
    assert mine > MIB
    assert tools.rss_bytes(2**22 + 12345) is None  # above pid_max: never a process


def test_summarize_memory_start_peak_end_growth_and_trend() -> None:
    samples = {
        7: [(0.0, 100 * MIB), (30.0, 140 * MIB), (60.0, 120 * MIB)],
        3: [(0.0, 50 * MIB), (60.0, 50 * MIB)],
    }
    summary = tools.summarize_memory(samples)
    assert [w.pid for w in summary] == [3, 7]
    flat, grower = summary
    assert (flat.start_mib, flat.peak_mib, flat.end_mib, flat.growth_mib) == (50, 50, 50, 0)
    assert flat.slope_mib_per_min == 0
    assert not flat.growing
    assert (grower.start_mib, grower.peak_mib, grower.end_mib) == (100, 140, 120)
    assert grower.growth_mib == 20
    assert grower.slope_mib_per_min == 20  # least squares over the three points: 20 MiB/min
    assert grower.growing  # 20 MiB > the 16 MiB warning
    assert grower.samples == 3
    assert grower.seconds == 60


def test_summarize_memory_keeps_only_the_stretch_asked_for() -> None:
    samples = {1: [(0.0, 10 * MIB), (5.0, 20 * MIB), (10.0, 30 * MIB), (15.0, 40 * MIB)]}
    [w] = tools.summarize_memory(samples, since=5.0, until=10.0)
    assert (w.start_mib, w.end_mib, w.samples) == (20, 30, 2)
    assert tools.summarize_memory(samples, since=100.0) == []


@given(
    st.lists(
        st.tuples(st.floats(0, 1e4, allow_nan=False), st.integers(0, 2**40)),
        min_size=1,
        max_size=40,
    )
)
def test_summary_bounds_hold_for_any_samples(points: list[tuple[float, int]]) -> None:
    points.sort()
    [w] = tools.summarize_memory({1: points})
    assert w.peak_mib >= w.start_mib
    assert w.peak_mib >= w.end_mib
    assert w.growth_mib == pytest.approx(w.end_mib - w.start_mib, abs=0.11)
    assert w.samples == len(points)


def test_memory_rows_render_every_worker() -> None:
    summary = tools.summarize_memory(
        {11: [(0.0, 100 * MIB), (300.0, 101 * MIB)], 12: [(0.0, 90 * MIB), (300.0, 130 * MIB)]}
    )
    rows = tools.memory_rows("postgresql w=2 c=16", summary)
    assert len(rows) == 2
    assert all(len(r) == len(tools.MEMORY_COLUMNS) for r in rows)
    assert rows[0][:2] == ["postgresql w=2 c=16", "1 (pid 11)"]
    assert rows[0][6] == "+1.0"
    assert rows[1][6] == "+40.0 (grows)"
    as_json = tools.memory_json(summary)
    assert [w["growing"] for w in as_json] == [False, True]


def test_memory_sampler_samples_this_process() -> None:
    sampler = tools.MemorySampler(lambda: [os.getpid()], interval=0.01).start()
    samples = sampler.stop()
    assert len(samples[os.getpid()]) >= 2  # one at start, one at stop
    assert tools.summarize_memory(samples)[0].peak_mib > 1


def test_server_workers_of_a_process_without_children_is_itself() -> None:
    assert tools.server_workers(os.getpid()) == [os.getpid()]


# --- profiles ----------------------------------------------------------------------------------


def test_py_spy_command_records_all_workers_without_pausing(tmp_path: Path) -> None:
    out = tmp_path / "p.svg"
    command = tools.py_spy_command("py-spy", 42, out, subprocesses=True)
    assert command[:4] == ["py-spy", "record", "--pid", "42"]
    assert "--nonblocking" in command
    assert "--subprocesses" in command
    assert "--duration" not in command  # stopped by SIGINT after the measured run
    assert command[-4:] == ["--format", "flamegraph", "--output", str(out)]


def test_py_spy_command_with_duration_and_speedscope(tmp_path: Path) -> None:
    command = tools.py_spy_command(
        "py-spy", 1, tmp_path / "p.json", fmt="speedscope", duration=0, rate=100
    )
    assert command[command.index("--duration") + 1] == "1"
    assert command[command.index("--rate") + 1] == "100"
    assert "--subprocesses" not in command
    assert command[command.index("--format") + 1] == "speedscope"


def test_py_spy_command_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="profile format"):
        tools.py_spy_command("py-spy", 1, tmp_path / "p", fmt="pprof")


def test_profile_path_is_beside_the_json() -> None:
    out = Path("/r/payments-20261207T080000Z.json")
    path = tools.profile_path(out, "postgresql uvicorn w=2/scan", "flamegraph")
    assert path == Path("/r/payments-20261207T080000Z-postgresql-uvicorn-w-2-scan.svg")
    assert tools.profile_path(out, "x", "speedscope").name.endswith("-x.speedscope.json")


# --- wrk output --------------------------------------------------------------------------------


def _wrk_output(*, requests: int, non_expected: int, exhausted: int, statuses: str) -> str:
    return (
        "Running 10s test @ http://127.0.0.1:1234\n"
        "Requests/sec:    123.40\n"
        f"CW_STATS requests={requests} duration_us=10000000 p50_us=20000 p90_us=50000 "
        "p99_us=90000 p999_us=120000 max_us=150000 mean_us=25000 connect=0 read=0 write=0 "
        f"timeout=2 status=0 non_expected={non_expected} exhausted={exhausted}\n"
        f"CW_STATUSES {statuses}\n"
        'CW_SAMPLE 402 {"code":"payment_declined"}\n'
    )


def test_parse_wrk_output_figures() -> None:
    run = payments.parse_wrk_output(
        _wrk_output(requests=1000, non_expected=3, exhausted=0, statuses="402:3"),
        connections=16,
        expected_status=201,
    )
    assert (run.requests, run.ok, run.unexpected, run.exhausted) == (1000, 997, 3, 0)
    assert run.seconds == 10.0
    assert run.requests_per_s == 100.0
    assert (run.p50_ms, run.p90_ms, run.p99_ms, run.max_ms) == (20.0, 50.0, 90.0, 150.0)
    assert run.little_ms == 160.0  # 16 connections / 100 req/s
    assert run.statuses == {"402": 3}
    assert run.socket_errors == {"timeout": 2}
    assert run.errors == 5
    assert run.wrk_requests_per_s == 123.4
    assert run.sample.startswith("402")


def test_parse_wrk_output_spares_are_not_unexpected_when_successes_are_201() -> None:
    # 10 spare GET /healthz (200) after the lines ran out, plus 2 real 409s
    run = payments.parse_wrk_output(
        _wrk_output(requests=100, non_expected=12, exhausted=10, statuses="200:10,409:2"),
        connections=4,
        expected_status=201,
    )
    assert (run.ok, run.unexpected, run.exhausted) == (88, 2, 10)
    assert run.statuses == {"409": 2}


def test_parse_wrk_output_spares_are_not_successes_when_successes_are_200() -> None:
    run = payments.parse_wrk_output(
        _wrk_output(requests=100, non_expected=1, exhausted=10, statuses="402:1"),
        connections=4,
        expected_status=200,
    )
    assert (run.ok, run.unexpected, run.exhausted) == (89, 1, 10)
    assert run.statuses == {"402": 1}


def test_parse_wrk_output_without_our_lines_fails() -> None:
    with pytest.raises(ValueError, match="CW_STATS"):
        payments.parse_wrk_output("Requests/sec: 1\n", connections=1, expected_status=200)


# --- scoring and the table ---------------------------------------------------------------------


def _kind(name: str, *, ok: int, p99_ms: float, seconds: float = 10.0) -> payments.KindResult:
    run = payments.parse_wrk_output(
        _wrk_output(requests=ok, non_expected=0, exhausted=0, statuses=""),
        connections=16,
        expected_status=payments.KINDS[name].expected_status,
    )
    run.p99_ms = p99_ms
    run.seconds = seconds
    run.socket_errors = {}
    run.cpu = {
        "server_cores": 1.0,
        "postgres_cores": 0.5,
        "other_cores": 0.1,
        "wrk_cores": 0.1,
        "machine_cores": 1.7,
        "stolen_cores": 0.0,
    }
    return payments.KindResult(kind=name, route=payments.KINDS[name].method_path, run=run)


def test_score_kind_meets_the_target_at_04_of_healthz_and_p99_100_ms() -> None:
    result = _kind("paycode", ok=4000, p99_ms=80.0)
    problems = payments.score_kind(
        result, paid=4010, healthz_rps=1000.0, connections=16, backend="postgresql"
    )
    assert problems == []
    assert result.paid_per_s == 401.0
    assert result.ratio_vs_healthz == 0.401
    assert result.in_flight_at_end == 10
    assert result.server_cpu_ms_per_payment == 2.5  # 1 core over 401 payments/s
    assert result.db_cpu_ms_per_payment == 1.2
    assert result.target_met is True


def test_score_kind_misses_on_p99_and_flags_a_count_mismatch() -> None:
    result = _kind("p2p", ok=4000, p99_ms=150.0)
    problems = payments.score_kind(
        result, paid=3900, healthz_rps=1000.0, connections=16, backend="sqlite"
    )
    assert result.target_met is False
    assert result.db_cpu_ms_per_payment is None  # SQLite has no server process
    assert problems == ["p2p: 3900 paid in the database, 4000 successes seen"]


def _case() -> payments.CaseResult:
    case = payments.CaseResult(
        backend="postgresql",
        server="uvicorn",
        server_workers=2,
        connections=16,
        wrk_threads=2,
        duration_s=10,
        db_pool_size=10,
    )
    case.healthz = _kind("scan", ok=10000, p99_ms=5.0).run
    for name, p99 in (("scan", 90.0), ("paycode", 300.0), ("p2p", 50.0)):
        result = _kind(name, ok=2000, p99_ms=p99)
        payments.score_kind(
            result, paid=2000, healthz_rps=1000.0, connections=16, backend="postgresql"
        )
        result.memory = [{"peak_mib": 130.4}, {"peak_mib": 128.6}]
        case.kinds[name] = result
    case.memory = tools.memory_json(
        tools.summarize_memory({5: [(0.0, 100 * MIB), (20.0, 101 * MIB)]})
    )
    return case


def test_table_has_one_row_per_kind_with_ratio_and_verdict() -> None:
    rows = payments._rows(_case())
    assert [r[4] for r in rows] == ["scan", "paycode", "p2p"]
    assert all(len(r) == len(payments.COLUMNS) for r in rows)
    ratio = [name for name, _ in payments.COLUMNS].index("÷healthz")
    assert [r[ratio] for r in rows] == ["0.200", "0.200", "0.200"]
    assert [r[-1] for r in rows] == ["no: ratio", "no: ratio, p99", "no: ratio"]
    assert rows[0][-2] == "130/129"  # peak RSS of each worker


def test_markdown_table_carries_the_caption() -> None:
    caption = tools.run_caption(
        commit="abc1234", load_before=[1, 1, 1], load_after=[2, 2, 2], cores=2, baseline="x"
    )
    text = payments.markdown_table([_case()], caption)
    lines = text.splitlines()
    assert lines[0].startswith("| backend | server |")
    assert len([line for line in lines if line.startswith("| postgresql")]) == 3
    assert lines[-1] == caption


def test_a_case_that_never_ran_is_one_error_row() -> None:
    case = payments.CaseResult("sqlite", "granian", 2, 16, 2, 10, 10, error="boom")
    [row] = payments._rows(case)
    assert row[-1] == "ERROR"
    assert len(row) == len(payments.COLUMNS)


def test_memory_rows_of_the_payments_bench() -> None:
    [row] = payments.memory_rows([_case()])
    assert row[0] == "postgresql w=2 c=16"
    assert row[6] == "+1.0"


# --- options and request lines -----------------------------------------------------------------


def test_parse_args_defaults_to_every_kind_and_uvicorn() -> None:
    args = payments.parse_args(["--quick"])
    assert args.kind_list == ["scan", "paycode", "p2p"]
    assert args.server == "uvicorn"
    assert args.paycode_devices == payments.QUICK_PAYCODE_DEVICES
    assert args.orders == payments.ORDER_RATE_CAP * args.duration
    assert args.p2p_transfers == payments.P2P_RATE_CAP * args.duration


def test_parse_args_one_kind_provides_no_lines_for_the_others() -> None:
    args = payments.parse_args(["--kinds", "paycode", "--server", "granian", "--duration", "300"])
    assert args.kind_list == ["paycode"]
    assert (args.orders, args.p2p_transfers) == (0, 0)
    assert args.server == "granian"


def test_parse_args_refuses_an_unknown_kind() -> None:
    with pytest.raises(SystemExit):
        payments.parse_args(["--kinds", "scan,cash"])


def test_server_commands() -> None:
    uvicorn = payments.server_command("uvicorn", payments.APP_FACTORY, 8123, 2)
    assert uvicorn[1:3] == ["-m", "uvicorn"]
    assert uvicorn[uvicorn.index("--workers") + 1] == "2"
    granian = payments.server_command("granian", payments.APP_FACTORY, 8123, 2)
    assert granian[granian.index("serve") + 1 : granian.index("serve") + 3] == [
        "--server",
        "granian",
    ]
    assert granian[granian.index("--port") + 1] == "8123"
    assert granian[granian.index("--workers") + 1] == "2"


def _resident(n: int) -> payments.Resident:
    return payments.Resident(n, f"usr_{n}", f"139{n:08d}", f"tok{n}", f"card{n}")


def test_transfer_lines_never_pay_oneself(tmp_path: Path) -> None:
    args = payments.parse_args(["--quick", "--kinds", "p2p", "--duration", "1"])
    args.p2p_transfers = 500
    people = [_resident(n) for n in range(5)]
    lines = tmp_path / "p2p.tsv"
    payments.write_transfers(args, people, lines)
    rows = [line.split("\t") for line in lines.read_text().splitlines()]
    assert len(rows) == 500
    tokens = {p.token: p.user_id for p in people}
    for token, raw in rows:
        body = json.loads(raw)
        assert body["to"] != tokens[token]
        assert payments.MIN_P2P <= body["amount"] <= payments.MAX_P2P
        assert body["pin"] == payments.PIN
    assert {json.loads(raw)["to"] for _, raw in rows} == set(tokens.values())


def test_charge_lines_are_signed_current_codes(tmp_path: Path) -> None:
    setup = payments.PaycodeSetup(
        devices=[(f"{n:08d}", paycode.new_secret()) for n in (11, 22, 33)],
        keys=[("key_a", "cwsk_a"), ("key_b", "cwsk_b")],
    )
    lines = tmp_path / "charges.tsv"
    written = payments.write_charges(
        setup, lines, first_step=29_000_000, last_step=29_000_001, tag="t1", merchants=2
    )
    rows = [line.split("\t") for line in lines.read_text().splitlines()]
    assert written == len(rows) == 6  # 3 devices × 2 steps
    secrets = dict(setup.keys)
    devices = dict(setup.devices)
    numbers = set()
    for step, authorization, raw in rows:
        header = signing.parse_authorization(authorization)
        assert header.timestamp == int(step) * 60 + 30  # the middle of the step
        message = signing.canonical_request(
            "POST", payments.KINDS["paycode"].path, header.timestamp, header.nonce, raw.encode()
        )
        assert signing.verify_hmac(secrets[header.key_id], message, header.signature)
        body = json.loads(raw)
        slot, otp = paycode.parse(body["code"])
        assert paycode.verify(devices[slot], otp, int(step) * 60 + 59, window=0) == int(step)
        assert payments.MIN_ORDER <= body["amount"] <= payments.MAX_ORDER
        numbers.add(body["out_trade_no"])
    assert len(numbers) == 6


def test_memory_lines_give_each_kinds_growth_and_the_whole_case() -> None:
    case = _case()
    for k in case.kinds.values():
        k.memory = tools.memory_json(
            tools.summarize_memory({9: [(0.0, 100 * MIB), (300.0, 100.5 * MIB)]})
        )
    lines = payments.memory_lines([case])
    assert len(lines) == 4  # three kinds and the whole case, one worker each
    assert lines[0].startswith("memory postgresql w=2 c=16 scan, worker 1 (pid 9): 100.0 → 100.5")
    assert "growth +0.5 MiB" in lines[0]
    assert "GROWING" not in lines[0]
    assert "whole case" in lines[-1]


@given(st.integers(1, 10**8 - 1), st.integers(1, 10**9))
def test_fast_code_is_paycode_generate(slot_number: int, step: int) -> None:
    secret = paycode.new_secret()
    slot = f"{slot_number:08d}"
    key = payments._totp_key(secret)
    assert payments.fast_code(key, slot, step) == paycode.generate(
        secret, slot, step * paycode.STEP_SECONDS
    )
