"""A PostgreSQL primary and a synchronous standby on local ports, for the failover test
(docs/operations.md, "PostgreSQL high availability"; docs/testing.md).

:class:`ReplicatedPair` builds both clusters in a temporary directory with the server's own
tools (``initdb``, ``pg_basebackup``, ``pg_ctl``) the way the production guide does it:
streaming replication through a physical replication slot, ``synchronous_commit = on`` and
the standby named in ``synchronous_standby_names``, so a commit is acknowledged only once the
standby has flushed it. :meth:`ReplicatedPair.crash_primary` stops the primary with
``pg_ctl stop -m immediate`` (no shutdown checkpoint, like a power cut for the database) and
:meth:`ReplicatedPair.promote` turns the standby into the primary (``pg_ctl promote``).

``initdb`` refuses to run as root: as root every command runs as the ``postgres`` OS user
(``runuser -u postgres --``) in a directory it owns. The binaries come from
``CITYWALLET_TEST_PG_BIN`` (default ``/usr/lib/postgresql/15/bin``, Debian's PostgreSQL 15).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from citywallet.interop.cells import free_port

PG_BIN = Path(os.environ.get("CITYWALLET_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "psql")
STANDBY_NAME = "citywallet_standby"  # its application_name, slot and synchronous_standby_names
DATABASE = "cw"


def missing_tools() -> list[str]:
    """What this machine lacks to build the pair (empty: it can)."""
    missing = [str(PG_BIN / tool) for tool in TOOLS if not (PG_BIN / tool).is_file()]
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            missing.append("runuser")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the postgres OS user")
    return missing


class ReplicatedPair:
    """A primary and its synchronous standby, each its own cluster on a free port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cw-failover-"))
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    # --- the URLs CityWallet uses ---------------------------------------------------------

    def url(self, port: int, database: str = DATABASE) -> str:
        """One cluster's URL (user postgres, trust authentication on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"

    @property
    def multi_host_url(self) -> str:
        """Both hosts, the writable one chosen at each connection (the production form)."""
        return (
            f"postgresql+psycopg://postgres@/{DATABASE}"
            f"?host=127.0.0.1:{self.primary_port}&host=127.0.0.1:{self.standby_port}"
            "&target_session_attrs=read-write&connect_timeout=3"
        )

    # --- building and running ---------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120.0) -> str:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def sql(self, port: int, statement: str, database: str = "postgres") -> str:
        """One statement through ``psql`` on a cluster; its unaligned output."""
        return self._run(
            "psql", "-X", "-qAt", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "-d", database, "-v", "ON_ERROR_STOP=1", "-c", statement,
        ).strip()  # fmt: skip

    def _write(self, path: Path, text: str) -> None:
        with path.open("a") as out:
            out.write(text)

    def start(self) -> ReplicatedPair:
        """Initialise the primary, clone the standby from it, start both; returns self."""
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        self._write(
            self.primary_dir / "postgresql.conf",
            f"""
listen_addresses = '127.0.0.1'
port = {self.primary_port}
unix_socket_directories = '{self.root}'
max_connections = 60
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
wal_keep_size = 64MB
hot_standby = on
synchronous_commit = on
synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'
""",
        )
        self._pg_ctl_start(self.primary_dir, "primary")
        self.sql(self.primary_port, f"SELECT pg_create_physical_replication_slot('{STANDBY_NAME}')")
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                  "-U", "postgres", "-D", str(self.standby_dir), "-X", "stream",
                  "-S", STANDBY_NAME, "--no-sync")  # fmt: skip
        (self.standby_dir / "standby.signal").touch()
        if self._as_postgres:
            shutil.chown(self.standby_dir / "standby.signal", "postgres", "postgres")
        # The standby's own settings come last and win over the primary's copied ones. Once
        # promoted it runs alone (no standby of its own: commits must not wait for one) until
        # a new standby is cloned from it (docs/operations.md).
        conninfo = (
            f"host=127.0.0.1 port={self.primary_port} user=postgres application_name={STANDBY_NAME}"
        )
        self._write(
            self.standby_dir / "postgresql.conf",
            f"""
port = {self.standby_port}
primary_conninfo = '{conninfo}'
primary_slot_name = '{STANDBY_NAME}'
synchronous_standby_names = ''
""",
        )
        self._pg_ctl_start(self.standby_dir, "standby")
        self.sql(self.primary_port, f'CREATE DATABASE "{DATABASE}"')
        return self

    def _pg_ctl_start(self, data: Path, name: str) -> None:
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / f"{name}.log"), "-w",
                  "-t", "60", "start")  # fmt: skip

    def sync_state(self) -> str:
        """The standby's state as the primary sees it (``sync`` when commits wait for it)."""
        return self.sql(
            self.primary_port,
            f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'",
        )

    def wait_synchronous(self, seconds: float = 30.0) -> None:
        """Until the primary counts the standby as its synchronous one."""
        deadline = time.monotonic() + seconds
        while self.sync_state() != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby is not synchronous: {self.sync_state()!r}")
            time.sleep(0.1)

    def crash_primary(self) -> None:
        """``pg_ctl stop -m immediate``: the primary's processes quit at once, no checkpoint."""
        self._run("pg_ctl", "-D", str(self.primary_dir), "-m", "immediate", "stop")

    def promote(self) -> None:
        """``pg_ctl promote``, waiting until the standby accepts writes."""
        self._run("pg_ctl", "-D", str(self.standby_dir), "-w", "-t", "60", "promote")

    def is_primary(self, port: int) -> bool:
        """Whether the cluster on ``port`` accepts writes (not in recovery)."""
        return self.sql(port, "SELECT pg_is_in_recovery()") == "f"

    def log(self, name: str, chars: int = 3000) -> str:
        """The tail of ``primary.log`` or ``standby.log``."""
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop whatever still runs and delete the directory."""
        for data in (self.primary_dir, self.standby_dir):
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "-D", str(data), "-m", "immediate", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ReplicatedPair:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
