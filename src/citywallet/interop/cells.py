"""Cells on one machine: a switch and N CityWallet deployments as real processes.

``citywallet cells up N`` and the multi-process tests and benchmark share this launcher:
:class:`Cells` creates one PostgreSQL database per process on the local cluster
(``{prefix}_switch``, ``{prefix}_cell_1`` …, dropped first if they exist), a var dir per
process (its keys), starts the switch (``citywallet switch serve``) and the cells
(``citywallet serve``, each with its participant id, the switch's URL and public key, and its
own public FSPIOP URL), registers every cell at the switch with the key that
``citywallet interop key`` prints, and seeds verified residents with money through each cell's
own HTTP API (sandbox SMS, sign-up, real name, PIN, card, top-up) and, if asked
(``merchants``), approved merchants the way a shop owner gets one (application, the
operator's ``merchant review``, an API key, a store's static code). With ``proxy`` rates, a
:class:`~citywallet.interop.faultproxy.FaultProxy` stands in front of every process and all
interop traffic goes through them; the residents' API is reached directly.

Every process runs in its own session (process group) and logs to ``workdir/<name>.log``;
:meth:`Cells.kill_switch` SIGKILLs the switch, :meth:`Cells.restart_switch` starts it again
on the same port and database. Leaving the ``with`` block stops everything (and drops the
databases unless ``keep_databases``).

Clients as the apps are: :func:`pay_across` (P2P to another cell's resident),
:func:`pay_merchant_across` (another cell's merchant code), :func:`merchant_order` and
:func:`refund_across` (a merchant's server: an order's dynamic code, a refund).
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from stdnum.cn import ric, uscc

from citywallet.identity import consent
from citywallet.interop.faultproxy import FaultProxy, FaultRates
from citywallet.merchant import signing
from citywallet.wallet.bank import sandbox_card_number

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "Cells-wallet-2026"  # noqa: S105 - sandbox logins printed by `cells up`
PIN = "502817"
READY_SECONDS = 90.0
PROXY_PORT_OFFSET = 50  # with --base-port B: proxies listen on B+50 (switch), B+50+k (cell k)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
OWNER_BASE = 9_000  # merchant m's owner is resident OWNER_BASE + m of its cell (phone_of)


@dataclass(frozen=True)
class Resident:
    """A verified resident of one cell with money, a PIN and an API session."""

    cell: str
    phone: str
    user_id: str
    token: str
    card_id: str
    top_up: int
    password: str = PASSWORD
    pin: str = PIN

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Merchant:
    """An approved merchant of one cell: its owner (a verified resident, for the console),
    an API key for its server (signed requests), its store and the store's static code."""

    cell: str
    merchant_id: str
    owner: Resident
    key_id: str
    secret: str  # the API key's HMAC secret
    store_id: str
    static_code: str  # the EMV payload printed at the counter (names the cell)

    def authorization(self, method: str, path: str, body: bytes) -> str:
        """A fresh ``Authorization`` header for its server's request (merchant-signing.md)."""
        now, nonce = int(time.time()), secrets.token_urlsafe(16)
        message = signing.canonical_request(method, path, now, nonce, body)
        signature = signing.sign_hmac(self.secret, message)
        return signing.format_authorization(signing.HMAC_SCHEME, self.key_id, now, nonce, signature)

    def request(
        self, http: httpx2.Client, method: str, path: str, body: Any = None
    ) -> httpx2.Response:
        """A signed request of its server to its cell (``http``'s base URL)."""
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {"Authorization": self.authorization(method, path, raw)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return http.request(method, path, content=raw, headers=headers)


class Process:
    """One server process: its command, environment, port, log, and a way to stop it."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int, log: Path
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.port = port
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it (in its own session: signals reach only what we send)."""
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, *, path: str = "/healthz", seconds: float = READY_SECONDS) -> None:
        """Until ``path`` answers 200 (``RuntimeError`` with the log's tail if it exits)."""
        deadline = time.monotonic() + seconds
        with httpx2.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.popen is None or self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.tail()}")
                try:
                    if client.get(self.url + path).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} in {seconds:.0f} s: {self.tail()}")

    def kill(self, sig: int = signal.SIGKILL, *, wait: float = 15.0) -> None:
        """Send ``sig`` to its process group and wait for it (SIGKILL if it lingers)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=wait)
        except ProcessLookupError:
            pass

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Cell:
    """One deployment: participant ``id``, its process, where the switch reaches it."""

    index: int
    id: str
    process: Process
    database_url: str
    var_dir: Path
    public_url: str  # its FSPIOP base as registered at the switch (through its proxy, if any)
    proxy: FaultProxy | None = None
    residents: list[Resident] = field(default_factory=list)
    public_key: str = ""  # its FSPIOP key, base64, as `citywallet interop key` prints it
    merchants: list[Merchant] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The residents' API, reached directly."""
        return self.process.url


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command(*args: str) -> list[str]:
    """``citywallet ARGS`` with this interpreter (the same code as the caller imports)."""
    return [sys.executable, "-m", "citywallet.cli", *args]


class Cells:
    """A switch and ``n`` cells on the local PostgreSQL, as a context manager."""

    def __init__(
        self,
        n: int = 3,
        *,
        base_port: int = 0,
        prefix: str = "cw",
        proxy: FaultRates | None = None,
        residents: int = 5,
        top_up: int = 100_000,
        merchants: int = 0,
        merchant_notify_url: str | None = None,
        cap: int = 100_000_000,
        workdir: Path | None = None,
        pg_url: str = PG_ADMIN_URL,
        switch: bool = True,
        keep_databases: bool = False,
        env: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if not 1 <= n <= 99:
            raise ValueError("between 1 and 99 cells")
        if not NAME.match(prefix):
            raise ValueError("the prefix is a lowercase name: a-z, 0-9, _")
        self.n = n
        self.prefix = prefix
        self.rates = proxy
        self.residents_per_cell = residents
        self.merchants_per_cell = merchants
        self.merchant_notify_url = merchant_notify_url
        self.top_up = top_up
        self.cap = cap
        self.workdir = workdir or Path("var") / "cells" / prefix
        self.pg_url = pg_url
        self.with_switch = switch
        self.keep_databases = keep_databases
        self.extra_env = dict(env or {})
        self.echo = echo or (lambda _line: None)
        self._ports = self._choose_ports(base_port)
        self.cells: list[Cell] = []
        self.switch: Process | None = None
        self.switch_proxy: FaultProxy | None = None
        self.switch_database_url = ""
        self.switch_public_key = ""
        self._databases: list[str] = []

    def _choose_ports(self, base: int) -> list[int]:
        """Ports of [switch, cell 1…n] then their proxies, in the same order."""
        count = self.n + 1
        if base == 0:
            return [free_port() for _ in range(2 * count)]
        return [base + i for i in range(count)] + [
            base + PROXY_PORT_OFFSET + i for i in range(count)
        ]

    # --- the public face ------------------------------------------------------------------

    @property
    def switch_url(self) -> str:
        """Where cells reach the switch (its proxy, if any)."""
        if self.switch_proxy is not None:
            return self.switch_proxy.url
        return f"http://127.0.0.1:{self._ports[0]}"

    def cell(self, participant_id: str) -> Cell:
        """The cell with this participant id."""
        for cell in self.cells:
            if cell.id == participant_id:
                return cell
        raise KeyError(participant_id)

    def proxies(self) -> list[FaultProxy]:
        """Every fault proxy, the switch's first."""
        found = [self.switch_proxy] + [c.proxy for c in self.cells]
        return [p for p in found if p is not None]

    def cli(self, target: Cell | None, *args: str, timeout: float = 120.0) -> str:
        """Run ``citywallet ARGS`` as a cell (or, for None, as the switch); its stdout."""
        process = target.process if target is not None else self.switch
        if process is None:
            raise RuntimeError("no switch in this set of cells")
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            cli_command(*args), env=process.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"citywallet {' '.join(args)} as {process.name} exited {done.returncode}: "
                f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return done.stdout

    def kill_switch(self) -> None:
        """SIGKILL the switch (its proxy stays: callers see 502 while it is down)."""
        if self.switch is not None:
            self.switch.kill(signal.SIGKILL)

    def restart_switch(self) -> None:
        """Start the switch again on the same port and database; returns once it answers."""
        if self.switch is None:
            raise RuntimeError("no switch in this set of cells")
        self.switch.kill(signal.SIGKILL)
        self.switch.start()
        self.switch.wait_ready()

    # --- start and stop -------------------------------------------------------------------

    def __enter__(self) -> Cells:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Databases, keys, the switch and the cells at once, registration, residents."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self.echo("starting " + ", ".join(p.name for p in self._processes()))
        for process in self._processes():
            process.start()
        if self.switch is not None:
            self.switch.wait_ready()
            self._register_cells()  # while the cells migrate and start
        for cell in self.cells:
            cell.process.wait_ready()
        merchants = f" and {self.merchants_per_cell} merchants" if self.merchants_per_cell else ""
        self.echo(f"seeding {self.residents_per_cell} residents{merchants} per cell")
        with ThreadPoolExecutor(self.n) as pool:
            list(pool.map(self._seed, self.cells))
        if self.switch is not None:
            self._await_aliases()

    def _processes(self) -> list[Process]:
        switch = [self.switch] if self.switch is not None else []
        return switch + [cell.process for cell in self.cells]

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and the proxies; drop the databases."""
        with ThreadPoolExecutor(self.n + 1) as pool:
            list(pool.map(lambda p: p.kill(signal.SIGTERM, wait=10.0), self._processes()))
        for proxy in self.proxies():
            proxy.stop()
        if not self.keep_databases:
            for name in self._databases:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._databases.clear()

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def _database(self, name: str) -> str:
        """A fresh database ``name`` on the cluster; its URL."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    def _env(self, name: str, database_url: str) -> dict[str, str]:
        var_dir = (self.workdir / name).resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")}
        env.update(
            {
                "CITYWALLET_DATABASE_URL": database_url,
                "CITYWALLET_VAR_DIR": str(var_dir),
                "CITYWALLET_SANDBOX": "true",
                "CITYWALLET_LOG_LEVEL": "WARNING",
                "CITYWALLET_DB_POOL_SIZE": "5",
                "CITYWALLET_SANDBOX_VERIFIER_LATENCY_MS": "0",
                "CITYWALLET_SANDBOX_BANK_LATENCY_MS": "0",
                # the seeding signs every resident up from loopback
                "CITYWALLET_SMS_SEND_PER_IP_PER_HOUR": "1000000",
                "CITYWALLET_SMS_VERIFY_PER_IP_PER_HOUR": "1000000",
            }
        )
        env.update(self.extra_env)
        return env

    def _proxy(self, index: int, target: str) -> FaultProxy | None:
        if self.rates is None:
            return None
        rates = FaultRates(**{**vars(self.rates), "seed": self.rates.seed + index})
        port = self._ports[self.n + 1 + index]
        return FaultProxy(target, rates, port=port).start()

    def _prepare(self) -> None:
        """Databases, var dirs, proxies and processes (not started); every FSPIOP key made
        and read at once (``switch key``, ``interop key``: no database needed)."""
        if self.with_switch:
            port = self._ports[0]
            self.switch_database_url = self._database(f"{self.prefix}_switch")
            env = self._env("switch", self.switch_database_url)
            command = cli_command("switch", "serve", "--port", str(port))
            self.switch = Process("switch", command, env, port, self.workdir / "switch.log")
            self.switch_proxy = self._proxy(0, self.switch.url)
        for k in range(1, self.n + 1):
            port = self._ports[k]
            participant = f"cell-{k}"
            url = self._database(f"{self.prefix}_cell_{k}")
            env = self._env(participant, url)
            proxy = self._proxy(k, f"http://127.0.0.1:{port}")
            public = (proxy.url if proxy else f"http://127.0.0.1:{port}") + "/fspiop"
            command = cli_command("serve", "--port", str(port))
            process = Process(participant, command, env, port, self.workdir / f"{participant}.log")
            self.cells.append(Cell(k, participant, process, url, Path(env["CITYWALLET_VAR_DIR"]),
                                   public, proxy))  # fmt: skip
        if not self.with_switch:
            return
        self.echo("making the FSPIOP keys")
        with ThreadPoolExecutor(self.n + 1) as pool:
            switch_key = pool.submit(self.cli, None, "switch", "key")
            keys = list(pool.map(lambda c: self.cli(c, "interop", "key"), self.cells))
        self.switch_public_key = switch_key.result().strip().splitlines()[-1]
        for cell, key in zip(self.cells, keys, strict=True):
            cell.public_key = key.strip().splitlines()[-1]
            cell.process.env.update(
                {
                    "CITYWALLET_INTEROP_PARTICIPANT_ID": cell.id,
                    "CITYWALLET_INTEROP_SWITCH_URL": self.switch_url,
                    "CITYWALLET_INTEROP_SWITCH_PUBLIC_KEY": self.switch_public_key,
                    "CITYWALLET_INTEROP_PUBLIC_URL": cell.public_url,
                }
            )

    def _register_cells(self) -> None:
        def register(cell: Cell) -> None:
            self.cli(
                None, "switch", "participants", "add", cell.id, "--name", f"Cell {cell.index}",
                "--public-key", cell.public_key, "--callback-url", cell.public_url,
                "--cap", str(self.cap),
            )  # fmt: skip

        self.echo("registering the cells at the switch")
        with ThreadPoolExecutor(self.n) as pool:
            list(pool.map(register, self.cells))

    def _await_aliases(self, seconds: float = 30.0) -> None:
        """Until the switch holds every resident's number, merchants' owners included (each
        cell announces a resident's number when the real name is verified);
        ``interop aliases sync`` for a cell whose
        numbers are still missing halfway."""
        expected = {cell.id: len(cell.residents) + len(cell.merchants) for cell in self.cells}
        engine = create_engine(self.switch_database_url)
        deadline = time.monotonic() + seconds
        synced = False
        try:
            while True:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text("SELECT fsp_id, count(*) FROM switch_aliases GROUP BY fsp_id")
                    ).all()
                held = {str(fsp): int(count) for fsp, count in rows}
                missing = [c for c in self.cells if held.get(c.id, 0) < expected[c.id]]
                if not missing:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"aliases missing at the switch: {held} of {expected}")
                if left < seconds / 2 and not synced:
                    for cell in missing:
                        self.cli(cell, "interop", "aliases", "sync")
                    synced = True
                time.sleep(0.2)
        finally:
            engine.dispose()

    def _seed(self, cell: Cell) -> None:
        with httpx2.Client(base_url=cell.url, timeout=30.0) as client:
            for i in range(1, self.residents_per_cell + 1):
                cell.residents.append(seed_resident(client, cell, i, self.top_up))
            for m in range(1, self.merchants_per_cell + 1):
                owner = seed_resident(client, cell, OWNER_BASE + m, 0)
                approve = functools.partial(self._approve, cell)
                cell.merchants.append(
                    seed_merchant(
                        client, cell, m, owner, approve, notify_url=self.merchant_notify_url
                    )
                )

    def _approve(self, cell: Cell, merchant_id: str) -> None:
        """The cell's operator approves a merchant's application (``merchant review``)."""
        self.cli(cell, "merchant", "review", merchant_id, "approve")


def phone_of(cell_index: int, i: int) -> str:
    """Resident ``i`` of cell ``cell_index``: a mobile number no other cell uses."""
    return f"139{cell_index:02d}{i:06d}"


SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = "伟芳娜敏静丽强磊军洋"


def name_of(cell_index: int, i: int) -> str:
    """A legal name (no digits) for resident ``i`` of cell ``cell_index``."""
    return SURNAMES[cell_index % 10] + GIVEN[i % 10] + GIVEN[i // 10 % 10]


def _id_number(cell_index: int, i: int) -> str:
    birth = date(1960, 1, 1) + timedelta(days=cell_index * 2_000 + i)
    body = f"110101{birth:%Y%m%d}{100 + i % 800:03d}"  # sequences 998/999 are magic: avoided
    return body + ric.calc_check_digit(body + "0")


def _ok(answer: httpx2.Response) -> Any:
    if answer.status_code >= 300:
        raise RuntimeError(f"seeding: {answer.request.url} {answer.status_code} {answer.text}")
    return answer.json() if answer.content else {}


def _sms_text(client: httpx2.Client, phone: str, *, seconds: float = 10.0) -> str:
    """The sandbox's last SMS to ``phone``: the API sends it at once, but when the worker's
    outbox round claimed it first it lands a moment after the answer."""
    deadline = time.monotonic() + seconds
    while True:
        items = _ok(client.get("/v1/dev/sms", params={"phone": phone}))["items"]
        if items or time.monotonic() >= deadline:
            return str(items[0]["text"]) if items else ""
        time.sleep(0.05)


def seed_resident(client: httpx2.Client, cell: Cell, i: int, top_up: int) -> Resident:
    """Resident ``i`` of ``cell`` as a newcomer does it, through the cell's own API."""
    phone = phone_of(cell.index, i)
    _ok(client.post("/v1/auth/sms-codes", json={"phone": phone}))
    found = re.search(r"\d{6}", _sms_text(client, phone))
    if found is None:
        raise RuntimeError(f"no sign-up code for {phone}")
    signed = _ok(client.post("/v1/auth/register", json={
        "phone": phone, "code": found.group(), "password": PASSWORD,
        "consent": consent.signup_body()}))  # fmt: skip
    user_id = str(signed["user"]["id"])
    token = str(signed["session"]["token"])
    auth = {"Authorization": f"Bearer {token}"}
    name = {"name": name_of(cell.index, i), "id_number": _id_number(cell.index, i)}
    _ok(client.post("/v1/me/real-name", json=name, headers=auth))
    _ok(client.post("/v1/me/payment-pin", json={"pin": PIN, "password": PASSWORD}, headers=auth))
    serial = cell.index * 100_000 + i
    card = {"card_number": sandbox_card_number("0000", serial=serial), "phone": phone}
    card_id = str(_ok(client.post("/v1/wallet/cards", json=card, headers=auth))["id"])
    if top_up:
        money = {**auth, "Idempotency-Key": uuid.uuid4().hex}
        body = {"card_id": card_id, "amount": top_up, "pin": PIN}
        funded = _ok(client.post("/v1/wallet/topups", json=body, headers=money))
        if funded.get("status") != "succeeded":
            raise RuntimeError(f"seeding: the top-up of {phone} is {funded.get('status')}")
    return Resident(cell.id, phone, user_id, token, card_id, top_up)


def uscc_of(cell_index: int, m: int) -> str:
    """A valid unified social credit code for merchant ``m`` of cell ``cell_index``."""
    body = f"914403{cell_index:02d}MA{m:07d}"
    return body + uscc.calc_check_digit(body)


def seed_merchant(
    client: httpx2.Client,
    cell: Cell,
    m: int,
    owner: Resident,
    approve: Callable[[str], None],
    *,
    notify_url: str | None = None,
) -> Merchant:
    """Merchant ``m`` of ``cell`` as a shop owner does it through the cell's own API: the
    application (the owner's verified name and bound card), the operator's approval
    (``approve``), an API key for its server, its first store's static code."""
    auth = owner.headers
    application = {
        "name_zh": f"{cell.index}号店{m}", "name_en": f"Cell {cell.index} Shop {m}",
        "uscc": uscc_of(cell.index, m), "mcc": "5812", "district": "罗湖区",
        "address": f"深圳市罗湖区东门中路{cell.index}{m}号", "contact_name": "张三",
        "contact_phone": owner.phone, "settlement_card_id": owner.card_id,
        "notify_url": notify_url,
    }  # fmt: skip
    merchant_id = str(_ok(client.post("/v1/merchants", json=application, headers=auth))["id"])
    approve(merchant_id)
    base = f"/v1/merchants/{merchant_id}"
    key = _ok(client.post(f"{base}/api-keys", json={"label": "cells"}, headers=auth))
    store_id = str(_ok(client.get(f"{base}/stores", headers=auth))["items"][0]["id"])
    code = _ok(client.get(f"{base}/stores/{store_id}/code", headers=auth))
    return Merchant(
        cell.id, merchant_id, owner, str(key["key"]["id"]), str(key["secret"]), store_id,
        str(code["payload"]),
    )  # fmt: skip


@dataclass(frozen=True)
class Payment:
    """A cross-provider P2P as its payer saw it: ids, final state, seconds per stage."""

    id: str
    switch_transfer_id: str
    state: str  # processing | committed | aborted | expired
    stages: dict[str, float]
    payer_fee: int = 0


FINAL = ("committed", "aborted", "expired")


def pay_across(
    http: httpx2.Client,
    payer: Resident,
    phone: str,
    amount: int,
    *,
    attempts: int = 3,
    wait: float = 60.0,
    poll: float = 0.05,
) -> Payment:
    """Lookup → quote → transfer through the payer's cell (``http``'s base URL), as the app
    does it; then the transfer's state until final (or ``wait`` seconds). A lookup or quote
    that times out (504: a message lost on the way) is asked again, up to ``attempts``."""
    stages: dict[str, float] = {}

    def ask(stage: str, call: Callable[[], httpx2.Response], ok: int) -> Any:
        started = time.perf_counter()
        for _ in range(attempts):
            answer = call()
            if answer.status_code != 504:
                break
        stages[stage] = time.perf_counter() - started
        if answer.status_code != ok:
            raise RuntimeError(f"{stage}: {answer.status_code} {answer.text[:200]}")
        return answer.json()

    auth = payer.headers
    ask("lookup", lambda: http.get(f"/v1/interop/parties/{phone}", headers=auth), 200)
    body = {"phone": phone, "amount": amount, "currency": "CNY"}
    quote = ask("quote", lambda: http.post("/v1/interop/quotes", json=body, headers=auth), 201)
    started = time.perf_counter()
    money = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    pay = {"quote_id": quote["quote_id"], "pin": payer.pin, "note": "cells"}
    answer = http.post("/v1/interop/transfers", json=pay, headers=money)
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"transfer: {answer.status_code} {answer.text[:200]}")
    transfer = answer.json()
    deadline = time.monotonic() + wait
    while transfer["state"] not in FINAL and time.monotonic() < deadline:
        time.sleep(poll)
        seen = http.get(f"/v1/interop/transfers/{transfer['id']}", headers=auth)
        if seen.status_code == 200:
            transfer = seen.json()
    stages["transfer"] = time.perf_counter() - started
    return Payment(
        transfer["id"], transfer["switch_transfer_id"], transfer["state"], stages,
        int(quote["payer_fee"]),
    )  # fmt: skip


@dataclass(frozen=True)
class QrPayment:
    """A payment to another cell's merchant code as its payer saw it: our transfer's id,
    the switch's, the merchant's order (a dynamic code's; a static code's is made by the
    merchant's cell), the final state and seconds per stage."""

    id: str  # itf_… at the payer's cell
    switch_transfer_id: str
    order_id: str
    state: str  # processing | committed | aborted | expired
    stages: dict[str, float]


def pay_merchant_across(
    http: httpx2.Client,
    payer: Resident,
    payload: str,
    amount: int | None = None,
    *,
    attempts: int = 3,
    wait: float = 60.0,
    poll: float = 0.05,
) -> QrPayment:
    """Scan → terms → confirm with the PIN through the payer's cell (``http``'s base URL),
    as the app does it for another cell's merchant code (``amount``: typed at a static
    code); then the transfer's state until final (or ``wait`` seconds). A payment whose
    quote times out (504: a message lost on the way, nothing held) is confirmed again under
    the same ``Idempotency-Key``, up to ``attempts``."""
    stages: dict[str, float] = {}
    auth = payer.headers
    started = time.perf_counter()
    shown = http.post("/v1/payments/scan/preview", json={"payload": payload}, headers=auth)
    stages["scan"] = time.perf_counter() - started
    if shown.status_code != 200 or shown.json().get("provider") is None:
        raise RuntimeError(f"scan: {shown.status_code} {shown.text[:200]}")
    started = time.perf_counter()
    money = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    body: dict[str, Any] = {"payload": payload, "pin": payer.pin, "note": "cells"}
    if amount is not None:
        body["amount"] = amount
    for _ in range(attempts):
        answer = http.post("/v1/payments/scan", json=body, headers=money)
        if answer.status_code != 504:
            break
    stages["pay"] = time.perf_counter() - started
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"pay: {answer.status_code} {answer.text[:200]}")
    paid = answer.json()
    started = time.perf_counter()
    transfer_id = str(paid["transfer_id"])
    state = {"paid": "committed", "processing": "processing"}.get(paid["status"], "")
    deadline = time.monotonic() + wait
    while state not in FINAL:
        seen = http.get(f"/v1/interop/transfers/{transfer_id}", headers=auth)
        if seen.status_code == 200:
            state = str(seen.json()["state"])
        if state in FINAL or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    stages["final"] = time.perf_counter() - started
    return QrPayment(transfer_id, str(paid["switch_transfer_id"]), str(paid["order_id"]), state,
                     stages)  # fmt: skip


def merchant_order(http: httpx2.Client, merchant: Merchant, amount: int) -> dict[str, Any]:
    """A new order of ``amount`` fen from the merchant's server (its dynamic code in
    ``qr_payload``, naming the merchant's cell)."""
    body = {"out_trade_no": f"C{uuid.uuid4().hex[:24]}", "amount": amount,
            "store_id": merchant.store_id}  # fmt: skip
    made = merchant.request(http, "POST", "/v1/merchant/orders", body)
    if made.status_code != 201:
        raise RuntimeError(f"order: {made.status_code} {made.text[:200]}")
    order: dict[str, Any] = made.json()
    return order


@dataclass(frozen=True)
class QrRefund:
    """A merchant's refund as its server saw it: the refund's id, the fee share it takes
    back, its final status (``succeeded`` or ``failed``; ``processing`` if not final within
    the wait), seconds per stage."""

    id: str
    order_id: str
    amount: int
    fee_back: int
    status: str
    stages: dict[str, float]


def refund_across(
    http: httpx2.Client,
    merchant: Merchant,
    order_id: str,
    amount: int,
    *,
    out_refund_no: str | None = None,
    attempts: int = 3,
    wait: float = 60.0,
    poll: float = 0.1,
) -> QrRefund:
    """The merchant's server refunds ``amount`` of an order paid through the switch (its
    cell, ``http``'s base URL, sends it back to the payer's provider), then asks for the
    refund until it is final. A request that got no answer is sent again under the same
    refund number (idempotent)."""
    number = out_refund_no or f"R{uuid.uuid4().hex[:24]}"
    body = {"out_refund_no": number, "amount": amount, "reason": "cells"}
    path = f"/v1/merchant/orders/{order_id}/refunds"
    started = time.perf_counter()
    answer: httpx2.Response | None = None
    for attempt in range(attempts):
        try:
            answer = merchant.request(http, "POST", path, body)
            break
        except httpx2.TransportError:
            if attempt == attempts - 1:
                raise
    assert answer is not None
    if answer.status_code not in (200, 201, 202):
        raise RuntimeError(f"refund: {answer.status_code} {answer.text[:200]}")
    refund = answer.json()
    stages = {"refund": time.perf_counter() - started}
    started = time.perf_counter()
    deadline = time.monotonic() + wait
    while refund["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(poll)
        seen = merchant.request(http, "GET", f"/v1/merchant/refunds/{refund['id']}")
        if seen.status_code == 200:
            refund = seen.json()
    stages["final"] = time.perf_counter() - started
    return QrRefund(
        str(refund["id"]), order_id, amount, int(refund["fee_back"]), str(refund["status"]),
        stages,
    )  # fmt: skip
