"""One settings object for the whole service (pydantic-settings, env prefix ``PAYMENT_``).

Nested groups are set with a double underscore, e.g. ``PAYMENT_DB__URL``. Modules read
``get_settings().<group>``, never ``os.environ``. Provider credentials are not environment
variables: they are read from Vault (KV v2) at start-up by :mod:`payment_service.secrets`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from payment_service.providers.payout_settings import PayoutProvidersSettings
from payment_service.providers.settings import ProvidersSettings


class Environment(StrEnum):
    """Where the service runs."""

    development = "development"
    """Local machine: dev credentials may be seeded, Vault may be absent."""
    test = "test"
    """The test suite."""
    production = "production"
    """Real money: every dependency must be reachable and configured."""


class HTTPSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_in_flight: int = Field(256, description="Requests served at once; beyond it 503 + Retry-After")
    max_webhooks_in_flight: int = Field(
        128, description="Provider webhooks served at once, a budget apart from max_in_flight (they finish payments)"
    )
    max_new_work_in_flight: int = Field(
        48,
        description="Mutating /v1 requests (new checkouts, donations, refunds …; not webhooks) served at once, "
        "within max_in_flight: under overload new work is refused first, so that reads and webhooks finish the "
        "work already accepted",
    )
    max_retry_after_seconds: int = Field(
        30, ge=1, description="Upper bound of the Retry-After of a shed request (it grows with the overload)"
    )
    reuse_port: bool = Field(
        False,
        description="Listen with SO_REUSEPORT so several API processes share one port (the kernel spreads "
        "connections); `payment-service dev --api-processes N` uses it. In Kubernetes run one process per pod.",
    )
    keep_alive_seconds: int = Field(
        35,
        ge=1,
        description="How long an idle client connection stays open: longer than max_retry_after_seconds, so that "
        "a refused client coming back after its Retry-After finds its connection (uvicorn's 5 s default made "
        "thousands of refused clients reconnect at once under overload)",
    )
    max_body_bytes: int = 1_048_576
    shutdown_grace_seconds: float = 20.0
    drain_delay_seconds: float | None = Field(None, description="Readiness 503 before closing; None: 5 prod, 0 else")
    public_base_url: str = "http://127.0.0.1:8000"


class DatabaseSettings(BaseModel):
    url: SecretStr = SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/payment_service")
    pool_size: int = Field(20, description="Connections each process keeps open once it has needed them")
    max_overflow: int = Field(
        0,
        description=(
            "Extra connections beyond pool_size, closed as soon as they are returned. Each costs a new "
            "Postgres backend (fork, catalog caches, every PL/pgSQL plan again): under steady load an "
            "overflow is opened and closed about once per 100 requests, so the default keeps none"
        ),
    )
    pool_timeout_seconds: float = 5.0
    pool_recycle_seconds: float = Field(
        1800.0,
        description=(
            "A pooled connection older than this is replaced at its next checkout: the pool keeps its "
            "connections, so one a firewall, pooler or failover silently cut is not kept for ever"
        ),
    )
    statement_timeout_ms: int = 15_000
    echo: bool = False


class RedisSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    client_id: str = "payment-service"
    consumer_group: str = "payment-service"
    enable_idempotence: bool = Field(
        False,
        description="Idempotent producer; on for real Kafka. The local Tansu cannot (InitProducerId fails).",
    )
    request_timeout_ms: int = 10_000


class VaultSettings(BaseModel):
    addr: str = "http://127.0.0.1:8200"
    token: SecretStr | None = None
    kv_mount: str = "secret"
    providers_path: str = "payment-service/providers"
    transit_mount: str = "transit"
    timeout_seconds: float = 5.0


class AuthSettings(BaseModel):
    algorithm: str = Field("HS256", pattern="^(HS256|RS256)$")
    hs256_secret: SecretStr | None = None
    rs256_public_key: SecretStr | None = None
    rs256_private_key: SecretStr | None = Field(None, description="Only for minting dev tokens")
    issuer: str = "game-platform"
    audience: str = "payment-service"
    leeway_seconds: int = 30


class IdempotencySettings(BaseModel):
    lock_timeout_seconds: int = Field(
        300,
        description="An in-progress key older than this may be taken over; longer than the longest request "
        "(provider calls with retries and failovers), refreshed at every recovery point",
    )
    retention_hours: int = 72
    max_key_length: int = 255


class OutboxSettings(BaseModel):
    batch_size: int = 500
    poll_interval_seconds: float = 1.0
    publish_timeout_seconds: float = 10.0


class WalletSettings(BaseModel):
    """Player wallets (amounts in minor units of ``currency``; enforced atomically by the ledger)."""

    currency: str = "RUB"
    max_balance_minor: int = Field(60_000_00, ge=0, description="Largest balance a wallet may hold")
    daily_top_up_minor: int = Field(30_000_00, ge=0, description="Top-ups allowed per calendar day")
    day_timezone: str = Field("Europe/Moscow", description="Where the calendar day of the top-up limit starts")
    order_hold_minutes: int = Field(60, ge=1, description="How long an order payment from a wallet stays held")


class ConsumerSettings(BaseModel):
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 5.0


class DonationSettings(BaseModel):
    """Live donations to streamers (amounts in minor units of ``currency``).

    The platform fee of a donation is ``max(min_fee_minor, fee_percent % of the amount)`` and never
    more than the amount; it is fixed when the donation is created.
    """

    currency: str = "RUB"
    min_amount_minor: int = Field(10_00, ge=1, description="Smallest donation (must exceed the minimum fee)")
    max_amount_minor: int = Field(300_000_00, ge=1, description="Largest single donation")
    fee_percent: Decimal = Field(Decimal("5"), ge=0, le=100, description="Platform fee, percent of the amount")
    min_fee_minor: int = Field(5_00, ge=0, description="The platform fee is at least this")
    message_max_length: int = Field(300, ge=1, description="Longer messages are cut (characters)")
    display_name_max_length: int = Field(32, ge=1)
    banned_words: list[str] = Field(
        default_factory=list, description="Word stems masked in messages and names (case-insensitive)"
    )
    request_sources: list[str] = Field(
        default_factory=lambda: ["streaming-service"],
        description="CloudEvents sources allowed to request wallet donations over Kafka",
    )
    ws_heartbeat_seconds: float = Field(15.0, gt=0, description="Ping frame interval on the alert WebSocket")
    ws_catch_up_seconds: float = Field(
        30.0, gt=0, description="Each alert connection re-reads the alert log this often (missed pub/sub messages)"
    )
    alert_publish_grace_seconds: float = Field(
        1.0, ge=0, description="Alerts not published this long after commit are published by the worker job"
    )
    statements_per_streamer: int = Field(
        4,
        ge=1,
        description=(
            "Wallet donations to one streamer in Postgres at once from one API process; the rest "
            "wait their turn in the process. Keep (API processes × this) near 8: a crowd of "
            "backends waiting on the streamer's alert-position row costs Postgres CPU"
        ),
    )
    turn_timeout_seconds: float = Field(
        5.0, gt=0, description="A donation that waited this long for its streamer's turn is answered 503 database_busy"
    )

    @model_validator(mode="after")
    def _streamer_gets_something(self) -> DonationSettings:
        if self.min_amount_minor <= self.min_fee_minor:
            raise ValueError("min_amount_minor must exceed min_fee_minor")
        if self.max_amount_minor < self.min_amount_minor:
            raise ValueError("max_amount_minor must be at least min_amount_minor")
        return self


class PlaytimeSettings(BaseModel):
    """The platform's playtime API (refund rules ask how long a user played a purchased game)."""

    base_url: str | None = Field(None, description="e.g. http://platform/internal; None: playtime is unknown")
    token: SecretStr | None = Field(None, description="Bearer token of this service at the platform")
    timeout_seconds: float = 2.0


class RefundSettings(BaseModel):
    """Steam-like auto-approval of refunds (see ``refund/rules.py``)."""

    auto_window_days: int = Field(14, ge=0, description="Approved at once when asked within this many days")
    max_playtime_minutes: int = Field(120, ge=0, description="... and with less playtime than this")
    abuse_period_days: int = Field(30, ge=1)
    abuse_max_refunds: int = Field(3, ge=0, description="More refunds of other purchases in the period: review")
    hard_window_days: int = Field(90, ge=0, description="Later requests are rejected (refund_window_expired)")
    over_playtime: Literal["review", "reject"] = Field("review", description="reject: refund_playtime_exceeded")


class CatalogSettings(BaseModel):
    """The Game Catalog Service (prices per region, payees and revenue-share terms) and our cache of it."""

    base_url: str | None = Field(
        None, description="e.g. http://game-catalog/internal; None: checkout answers 503 catalog_unavailable"
    )
    token: SecretStr | None = Field(None, description="Bearer token of this service at the catalog")
    timeout_seconds: float = Field(2.0, gt=0)
    max_attempts: int = Field(2, ge=1, description="GETs are retried on transport errors and 5xx")
    retry_backoff_seconds: float = Field(0.1, ge=0)
    cache_ttl_seconds: int = Field(300, ge=0, description="How long a price is cached (0: no cache)")
    default_region: str = Field("RU", pattern=r"^[A-Z]{2}$", description="Region of users whose token names none")
    event_sources: list[str] = Field(
        default_factory=lambda: ["game-catalog"], description="CloudEvents sources allowed to invalidate prices"
    )


class PayoutSettings(BaseModel):
    """Payouts to streamers and referrers (amounts in minor units of ``currency``; see ``docs/payouts.md``)."""

    currency: str = "RUB"
    min_amount_minor: int = Field(500_00, ge=100, description="Lowest minimum a payee may choose (and the default)")
    holding_days: int = Field(
        14, ge=0, description="Chargeback risk: donations younger than this are not paid out by the schedule"
    )
    schedule_timezone: str = Field("Europe/Moscow", description="Where a schedule day starts")
    details_key: str = Field("payout-details", description="Vault Transit key that encrypts payout details")
    max_attempts: int = Field(5, ge=1, description="Provider attempts per payout before it fails")
    retry_backoff_seconds: list[float] = Field(
        default_factory=lambda: [60.0, 300.0, 1800.0, 7200.0],
        description="Wait before the n-th new attempt after a transient failure (the last value repeats)",
    )
    sync_backoff_seconds: list[float] = Field(
        default_factory=lambda: [10.0, 30.0, 120.0, 600.0], description="Status sync of open attempts"
    )
    stuck_after_minutes: int = Field(60, ge=1, description="Open payouts older than this count as stuck")
    referral_sources: list[str] = Field(
        default_factory=lambda: ["social-service"],
        description="CloudEvents sources allowed to request referral payouts over Kafka",
    )
    providers: PayoutProvidersSettings = PayoutProvidersSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAYMENT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Environment = Environment.development
    service_name: str = "payment-service"
    log_level: str = "INFO"
    log_json: bool = True
    http: HTTPSettings = HTTPSettings()
    db: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()
    vault: VaultSettings = VaultSettings()
    auth: AuthSettings = AuthSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    outbox: OutboxSettings = OutboxSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    wallet: WalletSettings = WalletSettings()
    providers: ProvidersSettings = ProvidersSettings()
    playtime: PlaytimeSettings = PlaytimeSettings()
    refunds: RefundSettings = RefundSettings()
    donations: DonationSettings = DonationSettings()
    catalog: CatalogSettings = CatalogSettings()
    payouts: PayoutSettings = PayoutSettings()

    @property
    def is_production(self) -> bool:
        return self.env is Environment.production


@lru_cache
def get_settings() -> Settings:
    return Settings()
