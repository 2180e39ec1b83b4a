"""Payout provider registry: resolve by name, route by method/currency/amount/health/priority.

The payout counterpart of :mod:`payment_service.providers.registry`. Payout destinations decide
most of the routing (a bank account only goes by bank transfer; cards, YooMoney and SBP go through
YooKassa Payouts); among several fitting providers the healthy one with the lowest priority wins.
Failover follows the same rule as payments (``registry.should_fail_over``): only after a definite
failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import structlog

from payment_service.providers.bank_transfer.adapter import BankTransferProvider
from payment_service.providers.breaker import BreakerState, CircuitBreaker
from payment_service.providers.errors import ProviderError
from payment_service.providers.payout_settings import PayoutProvidersSettings
from payment_service.providers.ports import PayoutMethod, PayoutProvider
from payment_service.providers.registry import UnknownProvider
from payment_service.providers.yookassa_payouts.adapter import YooKassaPayoutsProvider

log = structlog.get_logger(__name__)

if TYPE_CHECKING:  # mypy proves every payout adapter satisfies the port

    def _conforms(a: YooKassaPayoutsProvider, b: BankTransferProvider) -> list[PayoutProvider]:
        return [a, b]


FACTORIES: dict[str, Any] = {"yookassa_payouts": YooKassaPayoutsProvider, "bank_transfer": BankTransferProvider}


class PayoutRegistry:
    def __init__(self, providers: Mapping[str, PayoutProvider], settings: PayoutProvidersSettings) -> None:
        self._providers = dict(providers)
        self.settings = settings

    @classmethod
    def build(
        cls,
        settings: PayoutProvidersSettings,
        credentials: Mapping[str, Mapping[str, Any]],
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> PayoutRegistry:
        """Adapters for every enabled payout provider that has credentials."""
        providers: dict[str, PayoutProvider] = {}
        for name, conf in settings.by_name().items():
            if not conf.enabled:
                continue
            creds = credentials.get(name)
            if creds and creds.get("enabled") is False:
                log.info("payout_provider_disabled_in_vault", provider=name)
                continue
            if not creds:
                log.warning("payout_provider_without_credentials", provider=name)
                continue
            try:
                providers[name] = FACTORIES[name](conf, creds, transport=(transports or {}).get(name))
            except ProviderError as exc:
                log.error("payout_provider_misconfigured", provider=name, error=exc.message)
        return cls(providers, settings)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def resolve(self, name: str) -> PayoutProvider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProvider(
                f"payout provider {name!r} is not configured", provider=name, operation="resolve"
            ) from None

    def _healthy(self, name: str) -> bool:
        b = getattr(self._providers.get(name), "breaker", None)
        return not isinstance(b, CircuitBreaker) or b.state is not BreakerState.open

    def route(self, *, method: PayoutMethod, currency: str, amount_minor: int) -> list[str]:
        """Names of the providers able to make this payout, best first."""
        confs = self.settings.by_name()
        fit = [
            name
            for name, provider in self._providers.items()
            if method in provider.methods
            and currency in confs[name].currencies
            and confs[name].min_amount_minor <= amount_minor <= confs[name].max_amount_minor
        ]
        fit.sort(key=lambda n: (not self._healthy(n), confs[n].priority, n))
        return fit

    async def aclose(self) -> None:
        for p in self._providers.values():
            await p.aclose()


class PayoutRouter(Protocol):
    """What creating a payout needs from the registry: the providers able to make it, best first."""

    def route(self, *, method: PayoutMethod, currency: str, amount_minor: int) -> list[str]: ...


class SettingsRouter:
    """Routing from settings alone (no adapters): for code without the process's registry at hand,
    e.g. Kafka consumers. Providers missing credentials are found out when the payout is submitted."""

    def __init__(self, settings: PayoutProvidersSettings) -> None:
        self.settings = settings

    def route(self, *, method: PayoutMethod, currency: str, amount_minor: int) -> list[str]:
        fit = [
            (conf.priority, name)
            for name, conf in self.settings.by_name().items()
            if conf.enabled
            and method in conf.payout_methods
            and currency in conf.currencies
            and conf.min_amount_minor <= amount_minor <= conf.max_amount_minor
        ]
        return [name for _, name in sorted(fit)]
