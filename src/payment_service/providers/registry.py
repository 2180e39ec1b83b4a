"""Provider registry: resolve by name, route by method/currency/amount/health/priority, and the failover rule.

The two decisions are pure functions so they can be tested as tables:

* :func:`route_candidates` — which providers may take a payment, best first (enabled, method,
  currency, amount limits; healthy before unhealthy; then priority, then name);
* :func:`should_fail_over` — may the caller try the next candidate after this error? Only when the
  failure is DEFINITE and guarantees no charge: ProviderUnavailable (connection refused, circuit
  open, 503 "not processed", credentials rejected) or ProviderOperationNotSupported/Disabled.
  Never on ProviderTimeout (unknown outcome: status-sync resolves it), never on a decline (the
  payer's answer), an invalid request (our bug) or an amount mismatch (something WAS created).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from payment_service.providers.breaker import BreakerState, CircuitBreaker
from payment_service.providers.errors import (
    ProviderError,
    ProviderInvalidRequest,
    ProviderOperationNotSupported,
    ProviderUnavailable,
)
from payment_service.providers.mobile.adapter import MobileProvider
from payment_service.providers.ports import PaymentMethod, PaymentProvider
from payment_service.providers.qiwi.adapter import QiwiProvider
from payment_service.providers.sber.adapter import SberProvider
from payment_service.providers.settings import ProviderSettings, ProvidersSettings
from payment_service.providers.tbank.adapter import TBankProvider
from payment_service.providers.yookassa.adapter import YooKassaProvider

log = structlog.get_logger(__name__)

if TYPE_CHECKING:  # mypy proves every adapter satisfies the port

    def _conforms(
        a: YooKassaProvider, b: TBankProvider, c: SberProvider, d: MobileProvider, e: QiwiProvider
    ) -> list[PaymentProvider]:
        return [a, b, c, d, e]


FACTORIES: dict[str, Any] = {
    "yookassa": YooKassaProvider,
    "tbank": TBankProvider,
    "sber": SberProvider,
    "mobile": MobileProvider,
    "qiwi": QiwiProvider,
}


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    name: str
    priority: int
    methods: frozenset[PaymentMethod]
    currencies: frozenset[str]
    min_amount_minor: int
    max_amount_minor: int
    enabled: bool = True
    healthy: bool = True


def route_candidates(
    candidates: Iterable[RouteCandidate],
    *,
    method: PaymentMethod,
    currency: str,
    amount_minor: int,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Names of the providers able to take this payment, best first."""
    skip = set(exclude)
    fit = [
        c
        for c in candidates
        if c.enabled
        and c.name not in skip
        and method in c.methods
        and currency in c.currencies
        and c.min_amount_minor <= amount_minor <= c.max_amount_minor
    ]
    fit.sort(key=lambda c: (not c.healthy, c.priority, c.name))
    return [c.name for c in fit]


def should_fail_over(error: BaseException) -> bool:
    """True only for a definite failure that guarantees nothing was charged at that provider."""
    return isinstance(error, ProviderUnavailable | ProviderOperationNotSupported)


class UnknownProvider(ProviderInvalidRequest):
    pass


class ProviderRegistry:
    def __init__(self, providers: Mapping[str, PaymentProvider], settings: ProvidersSettings) -> None:
        self._providers = dict(providers)
        self.settings = settings

    @classmethod
    def build(
        cls,
        settings: ProvidersSettings,
        credentials: Mapping[str, Mapping[str, Any]],
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> ProviderRegistry:
        """Adapters for every enabled provider with credentials (QIWI only when explicitly enabled)."""
        providers: dict[str, PaymentProvider] = {}
        for name, conf in settings.by_name().items():
            if not conf.enabled:
                continue
            factory = FACTORIES[name]
            if name == "qiwi":
                providers[name] = factory(conf)
                log.warning("provider_enabled_but_refuses", provider=name, reason=QiwiProvider.reason)
                continue
            creds = credentials.get(name)
            if creds and creds.get("enabled") is False:
                log.info("provider_disabled_in_vault", provider=name)
                continue
            if not creds:
                log.warning("provider_without_credentials", provider=name)
                continue
            try:
                providers[name] = factory(conf, creds, transport=(transports or {}).get(name))
            except ProviderError as exc:
                log.error("provider_misconfigured", provider=name, error=exc.message)
        return cls(providers, settings)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def resolve(self, name: str) -> PaymentProvider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProvider(f"provider {name!r} is not configured", provider=name, operation="resolve") from None

    def breaker(self, name: str) -> CircuitBreaker | None:
        b = getattr(self._providers.get(name), "breaker", None)
        return b if isinstance(b, CircuitBreaker) else None

    def candidates(self) -> list[RouteCandidate]:
        out = []
        for name, provider in self._providers.items():
            conf: ProviderSettings = self.settings.by_name()[name]
            b = self.breaker(name)
            out.append(
                RouteCandidate(
                    name=name,
                    priority=conf.priority,
                    methods=frozenset(provider.methods),
                    currencies=frozenset(conf.currencies),
                    min_amount_minor=conf.min_amount_minor,
                    max_amount_minor=conf.max_amount_minor,
                    enabled=conf.enabled and bool(provider.methods),
                    healthy=b is None or b.state is not BreakerState.open,
                )
            )
        return out

    def route(
        self, *, method: PaymentMethod, currency: str, amount_minor: int, exclude: Sequence[str] = ()
    ) -> list[str]:
        return route_candidates(
            self.candidates(), method=method, currency=currency, amount_minor=amount_minor, exclude=exclude
        )

    async def aclose(self) -> None:
        for p in self._providers.values():
            await p.aclose()
