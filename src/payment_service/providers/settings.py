"""Settings of the provider layer: the ``providers`` group of :class:`payment_service.config.Settings`.

Wire with one line in ``Settings``: ``providers: ProvidersSettings = ProvidersSettings()``; then
``PAYMENT_PROVIDERS__YOOKASSA__BASE_URL=http://127.0.0.1:9101/v3`` points YooKassa at its emulator.
Credentials are NOT here: they come from Vault (``resources.provider_credentials[<name>]``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from payment_service.providers.ports import PaymentMethod


class BreakerSettings(BaseModel):
    failure_threshold: int = 5
    window_seconds: float = 30.0
    open_seconds: float = 15.0
    half_open_probes: int = 1


class ProviderSettings(BaseModel):
    """What every provider has: endpoint, HTTP behaviour, routing limits."""

    enabled: bool = True
    base_url: str = ""
    priority: int = Field(100, description="Lower is tried first when several providers fit")
    methods: list[PaymentMethod] = Field(default_factory=list)
    currencies: list[str] = Field(default_factory=lambda: ["RUB"])
    min_amount_minor: int = 100
    max_amount_minor: int = 35_000_000
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 20.0
    total_timeout_seconds: float = Field(25.0, description="Deadline for one HTTP attempt, whatever the transport")
    max_attempts: int = Field(3, description="Attempts for retriable calls (1 = no retry)")
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 2.0
    breaker: BreakerSettings = BreakerSettings()


class YooKassaSettings(ProviderSettings):
    base_url: str = "https://api.yookassa.ru/v3"
    priority: int = 10
    methods: list[PaymentMethod] = Field(
        default_factory=lambda: [
            PaymentMethod.bank_card,
            PaymentMethod.sbp,
            PaymentMethod.yoomoney,
            PaymentMethod.sberpay,
            PaymentMethod.mobile,
        ]
    )
    webhook_ip_allowlist: list[str] = Field(
        default_factory=lambda: [
            "185.71.76.0/27",
            "185.71.77.0/27",
            "77.75.153.0/25",
            "77.75.154.128/25",
            "77.75.156.11/32",
            "77.75.156.35/32",
            "2a02:5180::/32",
        ],
        description="Tests/dev add 127.0.0.1/32 explicitly for the emulator",
    )


class TBankSettings(ProviderSettings):
    base_url: str = "https://securepay.tinkoff.ru/v2"
    priority: int = 20
    methods: list[PaymentMethod] = Field(default_factory=lambda: [PaymentMethod.bank_card, PaymentMethod.sbp])


class SberSettings(ProviderSettings):
    base_url: str = "https://securepayments.sberbank.ru/payment/rest"
    priority: int = 30
    methods: list[PaymentMethod] = Field(default_factory=lambda: [PaymentMethod.bank_card])
    callback_max_age_seconds: int = 0
    payment_page_url: str | None = Field(
        None,
        description=(
            "The payment page of an order, '{md_order}' standing for its id, as the merchant's "
            "register.do answers show it (formUrl), e.g. 'https://securepayments.sberbank.ru/payment/"
            "merchants/<merchant>/payment_ru.html?mdOrder={md_order}'. Used only when the answer "
            "of register.do was lost and the order is read back (its status has no formUrl); "
            "unset, such an order has no page and the payment expires"
        ),
    )

    @field_validator("payment_page_url")
    @classmethod
    def _names_the_order(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.count("{md_order}") != 1:
            raise ValueError("must contain '{md_order}' exactly once, where the order id goes")
        filled = urlsplit(value.replace("{md_order}", "0"))
        if filled.scheme not in ("https", "http") or not filled.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value


class QiwiSettings(ProviderSettings):
    """QIWI is gone: KIWI Bank's licence was revoked by the Bank of Russia on 21 Feb 2024 (OD-266)."""

    enabled: bool = False
    base_url: str = "https://api.qiwi.com/partner/bill/v1"
    priority: int = 1000
    methods: list[PaymentMethod] = Field(default_factory=list)


class MobileSettings(ProviderSettings):
    """Mobile-commerce aggregator (MTS, Beeline, MegaFon, Tele2) speaking our documented API."""

    base_url: str = "https://mc-aggregator.invalid/v1"
    priority: int = 40
    methods: list[PaymentMethod] = Field(default_factory=lambda: [PaymentMethod.mobile])
    min_amount_minor: int = 1_000
    max_amount_minor: int = 1_500_000


class ProvidersSettings(BaseModel):
    yookassa: YooKassaSettings = YooKassaSettings()
    tbank: TBankSettings = TBankSettings()
    sber: SberSettings = SberSettings()
    qiwi: QiwiSettings = QiwiSettings()
    mobile: MobileSettings = MobileSettings()

    def by_name(self) -> dict[str, ProviderSettings]:
        return {
            "yookassa": self.yookassa,
            "tbank": self.tbank,
            "sber": self.sber,
            "qiwi": self.qiwi,
            "mobile": self.mobile,
        }
