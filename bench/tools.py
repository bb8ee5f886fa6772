"""What every benchmark shares: the run's identity (commit, load, machine), server memory
sampling and py-spy profiles.

Pure helpers (``commit_label``, ``parse_vmrss``, ``summarize_memory``, ``py_spy_command``,
``run_caption``, ``memory_rows``) are unit-tested in ``tests/unit/test_bench_tools.py``; the rest
reads ``/proc`` or starts processes and is exercised by the benches themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
PROFILE_FORMATS = {"flamegraph": "svg", "speedscope": "speedscope.json", "raw": "txt"}
# A worker whose RSS grows by more than this over a run (end against start) is reported as
# growing; allocator noise and warm caches stay well under it
GROWTH_WARNING_MIB = 16.0


# --- CPU time from /proc -----------------------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_jiffies() -> tuple[float, float, float]:
    """(busy, total, stolen) jiffies of all CPUs since boot; stolen: the hypervisor ran
    someone else while this VM wanted a CPU."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = values[3] + values[4]
    steal = values[7] if len(values) > 7 else 0
    return float(sum(values) - idle), float(sum(values)), float(steal)


# --- the run's identity ------------------------------------------------------------------------


def commit_label(sha: str | None, porcelain: str | None) -> str | None:
    """``abc1234`` or ``abc1234+dirty`` (tracked files changed); None without git."""
    if not sha:
        return None
    dirty = any(line.strip() for line in (porcelain or "").splitlines())
    return sha + ("+dirty" if dirty else "")


def git_commit(repo: Path) -> str | None:
    """The short sha of HEAD in ``repo``, ``+dirty`` when tracked files differ from it."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    return commit_label(
        git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    )


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """Cores and CPU model: what a figure of this run needs beside it."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model}


def _loads(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def run_caption(
    *,
    commit: str | None,
    load_before: Sequence[float],
    load_after: Sequence[float] | None,
    cores: int | None,
    baseline: str,
) -> str:
    """One line under every table: the code, the machine, how busy it was, the baseline."""
    after = _loads(load_after) if load_after is not None else "(running)"
    return (
        f"commit {commit or 'unknown'} · {cores or '?'} cores · load average (1/5/15 min) "
        f"before {_loads(load_before)}, after {after} · ratios are to {baseline} of the same run"
    )


# --- memory ------------------------------------------------------------------------------------


def parse_vmrss(status: str) -> int | None:
    """Resident set size in bytes from the text of ``/proc/<pid>/status`` (None if absent)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                scale = {"kb": 1024, "mb": MIB, "b": 1}.get(unit, 1024)
                return int(parts[1]) * scale
    return None


def rss_bytes(pid: int) -> int | None:
    """A process's resident set size now (None if it is gone or this is not Linux)."""
    try:
        return parse_vmrss(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …), parents first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.append(kid)
                    todo.append(kid)
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def server_workers(root: int) -> list[int]:
    """The server's worker processes: the descendants of ``root`` that serve requests (not
    multiprocessing's resource tracker); ``root`` itself when it has none (one worker)."""
    kids = [pid for pid in descendants(root) if "resource_tracker" not in _cmdline(pid)]
    return kids or [root]


@dataclass(frozen=True)
class WorkerMemory:
    """One worker's resident memory over a sampled stretch, in MiB."""

    pid: int
    samples: int
    start_mib: float
    peak_mib: float
    end_mib: float
    growth_mib: float  # end - start
    slope_mib_per_min: float  # least-squares trend over every sample: growth without the noise
    seconds: float

    @property
    def growing(self) -> bool:
        """Grew by more than the warning threshold from start to end."""
        return self.growth_mib > GROWTH_WARNING_MIB


def _slope(points: Sequence[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def summarize_memory(
    samples: Mapping[int, Sequence[tuple[float, int]]],
    *,
    since: float | None = None,
    until: float | None = None,
) -> list[WorkerMemory]:
    """Per worker (pid): start, peak, end, growth and trend of its RSS samples ``(time s,
    bytes)`` taken between ``since`` and ``until`` (all of them when not given)."""
    out = []
    for pid in sorted(samples):
        points = [
            (t, rss)
            for t, rss in samples[pid]
            if (since is None or t >= since) and (until is None or t <= until)
        ]
        if not points:
            continue
        mib = [(t, rss / MIB) for t, rss in points]
        out.append(
            WorkerMemory(
                pid=pid,
                samples=len(points),
                start_mib=round(mib[0][1], 1),
                peak_mib=round(max(v for _, v in mib), 1),
                end_mib=round(mib[-1][1], 1),
                growth_mib=round(mib[-1][1] - mib[0][1], 1),
                slope_mib_per_min=round(60 * _slope(mib), 2),
                seconds=round(mib[-1][0] - mib[0][0], 1),
            )
        )
    return out


def memory_json(summary: Iterable[WorkerMemory]) -> list[dict[str, Any]]:
    """The summary as JSON-ready dicts (with the ``growing`` verdict)."""
    return [asdict(w) | {"growing": w.growing} for w in summary]


def memory_rows(label: str, summary: Sequence[WorkerMemory]) -> list[list[str]]:
    """Table rows (case, worker, samples, start, peak, end, growth, trend) of one summary."""
    rows = []
    for i, w in enumerate(summary, start=1):
        rows.append(
            [
                label,
                f"{i} (pid {w.pid})",
                f"{w.seconds:,.0f}",
                f"{w.start_mib:,.1f}",
                f"{w.peak_mib:,.1f}",
                f"{w.end_mib:,.1f}",
                f"{w.growth_mib:+,.1f}" + (" (grows)" if w.growing else ""),
                f"{w.slope_mib_per_min:+,.2f}",
            ]
        )
    return rows


MEMORY_COLUMNS = (
    "case",
    "worker",
    "seconds",
    "start MiB",
    "peak MiB",
    "end MiB",
    "growth MiB",
    "trend MiB/min",
)


class MemorySampler:
    """Samples the RSS of ``pids()`` (re-read each time: workers may restart) every
    ``interval`` seconds in a daemon thread, from ``start()`` to ``stop()``."""

    def __init__(self, pids: Callable[[], Sequence[int]], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: dict[int, list[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def now(self) -> float:
        """The sampler's clock (monotonic seconds), to mark stretches for ``summarize_memory``."""
        return time.monotonic()

    def sample(self) -> None:
        """Take one sample of every pid now."""
        moment = self.now()
        for pid in self.pids():
            rss = rss_bytes(pid)
            if rss is not None:
                with self._lock:
                    self.samples.setdefault(pid, []).append((moment, rss))

    def snapshot(self) -> dict[int, list[tuple[float, int]]]:
        """A copy of the samples so far (safe while sampling goes on)."""
        with self._lock:
            return {pid: list(points) for pid, points in self.samples.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        """Start sampling (one sample at once)."""
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> dict[int, list[tuple[float, int]]]:
        """Stop (one last sample) and return the samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sample()
        return self.snapshot()


# --- profiles ----------------------------------------------------------------------------------


def py_spy() -> str | None:
    """py-spy beside this interpreter (the ``dev`` extra installs it) or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_path(json_out: Path, name: str, fmt: str) -> Path:
    """Where a profile goes: beside the JSON, ``<json stem>-<name>.<ext>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return json_out.with_name(f"{json_out.stem}-{safe}.{PROFILE_FORMATS[fmt]}")


def py_spy_command(
    executable: str,
    pid: int,
    out: Path,
    *,
    fmt: str = "flamegraph",
    duration: int | None = None,
    subprocesses: bool = False,
    rate: int = 250,
) -> list[str]:
    """``py-spy record`` of ``pid`` (and its children) into ``out``, without pausing it;
    ``--gil`` is left out so waiting on the database shows as what it is. Without
    ``duration`` it runs until interrupted (SIGINT writes the file)."""
    if fmt not in PROFILE_FORMATS:
        raise ValueError(f"profile format is one of {sorted(PROFILE_FORMATS)}, not {fmt!r}")
    command = [executable, "record", "--pid", str(pid), "--nonblocking", "--rate", str(rate)]
    if subprocesses:
        command.append("--subprocesses")
    if duration is not None:
        command += ["--duration", str(max(1, duration))]
    return [*command, "--format", fmt, "--output", str(out)]


class Profile:
    """A py-spy recording of one measured stretch: ``start()`` before, ``finish()`` after.
    Without py-spy it does nothing and says so in ``problem``."""

    def __init__(
        self,
        pid: int,
        out: Path,
        *,
        fmt: str = "flamegraph",
        subprocesses: bool = False,
        duration: int | None = None,
    ) -> None:
        self.pid, self.out, self.fmt = pid, out, fmt
        self.subprocesses, self.duration = subprocesses, duration
        self.process: subprocess.Popen[bytes] | None = None
        self.problem: str | None = None
        self.log = out.with_name(out.name + ".log")

    def start(self) -> Profile:
        """Start recording (returns self)."""
        executable = py_spy()
        if executable is None:
            self.problem = "py-spy not found (pip install py-spy; it is in the dev extra)"
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        command = py_spy_command(
            executable,
            self.pid,
            self.out,
            fmt=self.fmt,
            duration=self.duration,
            subprocesses=self.subprocesses,
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.3)  # attached before the measured work starts
        if self.process.poll() not in (None, 0):
            self.problem = f"py-spy exited {self.process.returncode}: {_tail(self.log)}"
            self.process = None
        return self

    def finish(self, timeout: float = 60.0) -> str | None:
        """Stop recording (SIGINT when it has no duration), wait for the file; returns its
        path, or None (``problem`` says why)."""
        process = self.process
        if process is None:
            return None
        if self.duration is None and process.poll() is None:
            process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            self.problem = "py-spy did not finish in time"
            return None
        if not self.out.exists():
            self.problem = f"py-spy wrote no profile (exit {process.returncode}): {_tail(self.log)}"
            return None
        self.log.unlink(missing_ok=True)
        return str(self.out)


def _tail(path: Path, chars: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""
