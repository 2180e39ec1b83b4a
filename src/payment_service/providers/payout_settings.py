"""Settings of the payout providers: ``settings.payouts.providers`` (see :mod:`payment_service.config`).

Endpoints and HTTP behaviour only; credentials come from Vault (``resources.provider_credentials``):
``yookassa_payouts: {"agent_id", "secret_key"}`` (the payout gateway's own id and key, not the
shop's) and ``bank_transfer: {"api_key", "webhook_secret"}``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from payment_service.providers.ports import PayoutMethod
from payment_service.providers.settings import ProviderSettings

_YOOKASSA_IPS = [
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.154.128/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "2a02:5180::/32",
]


class PayoutProviderSettings(ProviderSettings):
    """HTTP behaviour of :class:`ProviderSettings` plus what a payout provider can pay to."""

    payout_methods: list[PayoutMethod] = Field(default_factory=list)
    min_amount_minor: int = 100
    max_amount_minor: int = 50_000_000


class YooKassaPayoutsSettings(PayoutProviderSettings):
    """YooKassa Payouts (API v3 ``/payouts``) through the payout gateway (agentId)."""

    base_url: str = "https://api.yookassa.ru/v3"
    priority: int = 10
    payout_methods: list[PayoutMethod] = Field(
        default_factory=lambda: [PayoutMethod.bank_card, PayoutMethod.yoomoney, PayoutMethod.sbp]
    )
    max_amount_minor: int = Field(50_000_000, description="SBP payouts: 1 ₽ – 500 000 ₽ per payout")
    webhook_ip_allowlist: list[str] = Field(
        default_factory=lambda: list(_YOOKASSA_IPS), description="Tests/dev add 127.0.0.1/32 for the emulator"
    )


class BankTransferSettings(PayoutProviderSettings):
    """Our bank's transfer API (documented in ``docs/payouts.md``): payouts to bank accounts."""

    base_url: str = "https://bank-gateway.invalid/v1"
    priority: int = 20
    payout_methods: list[PayoutMethod] = Field(default_factory=lambda: [PayoutMethod.bank_account])
    max_amount_minor: int = 1_000_000_000_00
    webhook_tolerance_seconds: int = Field(300, description="Oldest accepted webhook signature (0: no age check)")


class PayoutProvidersSettings(BaseModel):
    yookassa_payouts: YooKassaPayoutsSettings = YooKassaPayoutsSettings()
    bank_transfer: BankTransferSettings = BankTransferSettings()

    def by_name(self) -> dict[str, PayoutProviderSettings]:
        return {"yookassa_payouts": self.yookassa_payouts, "bank_transfer": self.bank_transfer}
