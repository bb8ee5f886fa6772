"""Settings from the environment (prefix ``CITYWALLET_``), with safe development defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable; read once per process through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="CITYWALLET_", env_file=None, extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Where dev data, keys and logs live.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file under var_dir. "
        "postgresql+psycopg://user@host/db selects PostgreSQL.",
    )
    db_pool_size: int = 10
    db_pool_pre_ping: bool = Field(
        default=False,
        description="Check every pooled PostgreSQL connection before each use (one round "
        "trip per transaction). Off: see db_pool_recycle_seconds and db_ping_idle_seconds.",
    )
    db_pool_recycle_seconds: int = Field(
        default=1800,
        description="Replace a pooled PostgreSQL connection this old at its next checkout "
        "(-1: never).",
    )
    db_ping_idle_seconds: float = Field(
        default=10.0,
        description="Check a pooled PostgreSQL connection that sat unused this long before "
        "handing it out (connections in steady use are never pinged; 0: never).",
    )
    master_keys: str = Field(
        default="",
        description="Data-encryption keys as 'kid:base64key,...' (first is current). "
        "Empty: a key file under var_dir is created on first start (development only).",
    )
    lookup_key: str = Field(
        default="",
        description="Base64 key for lookup hashes (with CITYWALLET_MASTER_KEYS); never rotated.",
    )
    key_file: Path | None = Field(default=None, description="Key file; default var_dir/keys.json.")
    log_level: str = "INFO"
    log_json: bool = False
    traces: Literal["", "otlp", "console"] = Field(
        default="",
        description="OpenTelemetry traces of requests and their SQL: 'otlp' (to the collector "
        "the OTEL_EXPORTER_OTLP_* variables name) or 'console'; empty: off.",
    )
    failpoints: str = Field(
        default="",
        description="Crash or fail on purpose at named steps of the money flows "
        "('commit.after=crash@2,...'; platform/failpoints.py): crash tests only, refused in "
        "production.",
    )
    log_file: Path | None = Field(
        default=None,
        description="Write logs to this file (appended) instead of stderr; `citywallet demo` "
        "sets var_dir/demo.log so its terminal shows only the URLs and logins.",
    )
    seal_max_transfers: int = 10_000
    seal_interval_seconds: float = Field(
        default=2.0, description="How often the worker seals new transfers into a block."
    )
    ledger_unsealed_bound_intervals: int = Field(
        default=10,
        description="`ledger verify` fails when a transfer has waited longer than this many "
        "seal intervals for its seal.",
    )
    ledger_origin: str = Field(
        default="citywallet.example/ledger",
        pattern=r"^[^\s+]+$",
        description="The log's name in its checkpoints (C2SP origin, also the note key name): "
        "set it to your host and path; no spaces or '+'.",
    )
    ledger_witnesses: list[str] = Field(
        default_factory=list,
        description="Where each new checkpoint is pushed, as JSON: absolute file paths "
        "(appended, one JSON line per checkpoint) and http(s) URLs (POSTed as text/plain).",
    )
    worker_poll_seconds: float = 0.5
    run_worker_in_server: bool = True

    # identity
    sandbox: bool = Field(
        default=True,
        description="Sandbox mode: sandbox SMS gateway and identity verifier, and the dev-only "
        "endpoints (GET /v1/dev/sms). Production sets false and configures real adapters.",
    )
    sms_code_ttl_seconds: int = 300
    sms_send_per_minute: int = Field(default=1, description="SMS codes per phone per minute.")
    sms_send_per_day: int = Field(default=10, description="SMS codes per phone per 24 hours.")
    sms_send_per_ip_per_hour: int = 30
    sms_code_max_attempts: int = Field(default=5, description="Wrong tries that kill a code.")
    login_failures_per_phone: int = Field(default=10, description="Per login_failure_window.")
    login_failures_per_ip: int = 100
    login_failure_window_seconds: int = 900
    session_ttl_seconds: int = 30 * 24 * 3600
    session_cookie_secure: bool = Field(
        default=True, description="Mark the session cookie Secure (HTTPS only)."
    )
    tier_checks: list[int] = Field(
        default=[1, 3, 5],
        description="External checks needed for tiers 1/2/3 (PBOC Class I/II/III), as JSON.",
    )
    pin_max_attempts: int = 5
    pin_lock_seconds: int = 3 * 3600
    sandbox_verifier_latency_ms: int = Field(
        default=120, description="Sandbox identity verifier: typical latency (±50 % jitter)."
    )
    sandbox_verifier_failure_rate: float = Field(
        default=0.0, description="Sandbox identity verifier: share of calls answering unavailable."
    )
    sandbox_sms_failure_rate: float = Field(
        default=0.0, description="Sandbox SMS gateway: share of sends that fail (retried)."
    )

    # wallet
    wallet_limit_preset: Literal["pboc", "ecny"] = Field(
        default="pboc",
        description="Tier limits: 'pboc' (PBOC Class I/II/III) or 'ecny' (e-CNY wallet types).",
    )
    wallet_tier_limits: dict[str, dict[str, int | None]] = Field(
        default_factory=dict,
        description="Per-tier overrides in fen on top of the preset, as JSON: "
        '{"1": {"daily": 200000}}; fields single, daily, yearly, lifetime, balance; null = none.',
    )
    withdrawal_free_quota: int = Field(
        default=100_000, description="Lifetime fee-free withdrawals per user (fen)."
    )
    withdrawal_fee_rate_bp: int = Field(
        default=10, description="Withdrawal fee beyond the free quota, basis points (10 = 0.1 %)."
    )
    withdrawal_fee_minimum: int = Field(default=10, description="Minimum withdrawal fee (fen).")
    max_bank_cards: int = 10
    bank_timeout_seconds: float = Field(
        default=10.0, description="How long a bank call may take before it counts as unknown."
    )
    funding_reconcile_after_seconds: int = Field(
        default=60,
        description="Top-ups/withdrawals still processing after this long are asked of the bank.",
    )
    split_max_shares: int = 100
    split_remind_interval_seconds: int = Field(
        default=3600, description="How often a split's creator may remind one participant."
    )
    sandbox_bank_latency_ms: int = Field(
        default=150, description="Sandbox bank: typical latency of a call (±50 % jitter)."
    )
    sandbox_bank_late_answer_seconds: float = Field(
        default=30.0,
        description="Sandbox bank: seconds after a timed-out call until a query knows the outcome.",
    )

    # --- merchants ---------------------------------------------------------------------
    business_timezone: str = Field(
        default="Asia/Shanghai",
        description="Where business days (limits, statements, settlement) begin and end.",
    )
    merchant_fee_rate_bp: int = Field(
        default=38, description="Default merchant discount rate in basis points (38 = 0.38 %)."
    )
    merchant_settle_days: int = Field(default=1, description="Default settlement delay: T+n.")
    merchant_auto_approve: bool = Field(
        default=False, description="Activate new merchants without an operator's review (demo)."
    )
    order_ttl_seconds: int = Field(
        default=1800, description="How long an order may be paid unless it says otherwise."
    )
    static_qr_daily_cap: int = Field(
        default=50_000,
        description="Per payer and day, the most that static merchant codes may take (fen).",
    )
    paycode_free_per_payment: int = Field(
        default=50_000, description="Default password-free limit per payment-code payment (fen)."
    )
    paycode_free_per_day: int = Field(
        default=100_000, description="Default password-free limit per day of payment codes (fen)."
    )
    paycode_confirm_seconds: int = Field(
        default=120, description="How long a resident has to confirm a large payment-code charge."
    )
    paycode_max_failures: int = Field(
        default=5, description="Wrong codes for one device before it is locked for 10 minutes."
    )
    signature_window_seconds: int = Field(
        default=300, description="Signed merchant requests: allowed clock difference (±)."
    )
    webhook_allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts or IPs webhooks may reach although they are loopback/private "
        "(development only), e.g. ['127.0.0.1', 'localhost'].",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, description="How long a merchant's server has to acknowledge a webhook."
    )

    # --- red packets ---------------------------------------------------------------------
    redpacket_min_share: int = Field(default=1, description="Smallest red-packet share (fen).")
    redpacket_max_total: int = Field(
        default=20_000, description="Most one red packet may hold (fen; WeChat: 200 yuan)."
    )
    redpacket_max_shares: int = Field(default=100, description="Most shares in one red packet.")
    redpacket_expiry_seconds: int = Field(
        default=24 * 3600,
        description="After this long, what is unclaimed of a red packet returns to its sender.",
    )
    redpacket_group_max_members: int = Field(
        default=500, description="Most members of a red-packet group, its owner included."
    )

    # --- limits, client address and production start (issue 12, items 7-9) -----------------
    sms_verify_per_ip_per_hour: int = Field(
        default=60, description="SMS code checks per client IP per hour, over all phones."
    )
    trusted_proxies: str = Field(
        default="",
        description="Addresses (comma-separated IPs or CIDR ranges, '*' for any) whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed. Empty: none; the client address "
        "is the TCP peer's.",
    )
    ledger_key: str = Field(
        default="",
        description="The ledger's Ed25519 signing key: base64 of its 32-byte seed. Empty: the "
        "key file's 'ledger' entry, else (sandbox only) one generated into the database.",
    )
    # --- interoperability (issue 14, docs/interop.md) ---------------------------------------
    interop_key: str = Field(
        default="",
        description="This process's Ed25519 key for FSPIOP signatures (a provider's or the "
        "switch's): base64 of its 32-byte seed. Empty: the key file's 'interop' entry, else "
        "(sandbox only) one generated into the key file.",
    )
    interop_participant_id: str = Field(
        default="",
        description="This deployment's participant id at the switch (1-32 of a-z 0-9 -). "
        "Empty: not connected to a switch.",
    )
    interop_switch_url: str = Field(
        default="", description="Base URL of the switch's FSPIOP API, e.g. http://switch:9000."
    )
    interop_switch_public_key: str = Field(
        default="",
        description="The switch's Ed25519 public key (base64 of 32 bytes): callbacks from the "
        "switch are checked against it.",
    )
    interop_public_url: str = Field(
        default="",
        description="Where the switch reaches this deployment's FSPIOP endpoints "
        "(e.g. http://cell-1:8000/fspiop); registered with the switch.",
    )
    interop_transfer_seconds: int = Field(
        default=60, description="How long a cross-provider transfer may take before it expires."
    )
    interop_lookups_per_hour: int = Field(
        default=60,
        ge=1,
        description="How many mobile numbers a resident may look up at the switch per hour "
        "(a number someone here found in the last 5 minutes is answered without a lookup).",
    )
    switch_window_seconds: float = Field(
        default=3600,
        gt=0,
        description="The switch (citywallet switch serve): how long a settlement window stays "
        "open before it is closed, netted and the next one opened.",
    )
    sms_adapter: str = Field(
        default="",
        description="Production SMS gateway: 'package.module:factory', called with the "
        "settings. Empty: the sandbox gateway (sandbox only).",
    )
    identity_adapter: str = Field(
        default="",
        description="Production identity verifier: 'package.module:factory' (as sms_adapter).",
    )
    bank_adapter: str = Field(
        default="",
        description="Production bank adapter: 'package.module:factory' (as sms_adapter).",
    )

    # --- HTTP hardening: request body caps and security headers (docs/security.md) -------
    max_body_bytes: int = Field(
        default=64 * 1024,
        description="Largest request body (bytes) of every route not named below; a larger "
        "one, chunked or not, answers 413 payload_too_large before it is read.",
    )
    max_upload_bytes: int = Field(
        default=9 * 1024 * 1024,
        description="Largest body of the QR photo upload (POST /app/scan/image): "
        "an 8 MB picture and the rest of its form.",
    )
    max_campaign_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        description="Largest body of a campaign's creation (POST /v1/operator/campaigns and "
        "the console's form), which may list up to 100,000 merchant ids.",
    )
    hsts_max_age_seconds: int = Field(
        default=365 * 24 * 3600,
        description="Strict-Transport-Security max-age sent on responses served over HTTPS "
        "(directly or through a trusted proxy); 0 sends none.",
    )

    # --- the web layer's per-request cost (docs/operations.md, docs/security.md) ---------
    http_threads: int = Field(
        default=40,
        ge=1,
        description="Worker threads per server process for synchronous routes and "
        "dependencies (anyio's default limiter); more threads than pooled connections "
        "(db_pool_size, overflow 2x) only queue on the pool.",
    )
    session_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a server process trusts a session it looked up without asking "
        "the database again (0: always ask). Revocations in the same process take effect at "
        "once, in other processes within this time; money paths re-read the account anyway.",
    )
    session_cache_size: int = Field(
        default=100_000, ge=1, description="Most sessions one server process keeps cached."
    )

    # --- the operator console: dual control and a second factor (docs/web-operator.md) ---
    operator_dual_control: bool = Field(
        default=True,
        description="Funding, issuing and reclaiming campaigns and freezing or unfreezing "
        "residents need two operators: one proposes, another approves. Off: one operator "
        "acts alone (a single-operator deployment; the CLI always acts alone).",
    )
    operator_proposal_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="A proposal nobody approved or rejected within this time expires.",
    )
    operator_second_factor: bool = Field(
        default=True,
        description="The operator console asks for a second factor (TOTP, or a passkey "
        "verified in this session) after the password, once per session.",
    )
    operator_totp_issuer: str = Field(
        default="CityWallet", description="The issuer name shown in authenticator apps."
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``var_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'citywallet.db').resolve()}"

    @property
    def resolved_key_file(self) -> Path:
        """Where the development key ring lives when keys are not given in the environment."""
        return self.key_file or self.var_dir / "keys.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own :class:`Settings`)."""
    return Settings()
