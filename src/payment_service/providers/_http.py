"""The HTTP plumbing every provider client shares: timeouts, retries with jitter, breaker, metrics.

Classification of transport outcomes (the adapters add the provider's own error codes on top):

* connection refused / connect timeout / pool timeout → ProviderUnavailable (nothing was sent);
* HTTP 503 and 429 → ProviderUnavailable (the provider says it did not process the request);
* read/write timeout, dropped connection, the per-attempt deadline, HTTP 500/502/504 →
  ProviderTimeout for a mutating call (outcome unknown), ProviderUnavailable for a read.

Retries (tenacity, exponential back-off with full jitter) happen only when repeating cannot
double-charge: for ``idempotent`` calls (reads; YooKassa POSTs carrying the same Idempotence-Key)
on any of the failures above, for other calls only when nothing was sent (connect errors, 503).

Every failure above counts against the provider's breaker, except a *timeout* (httpx connect,
read, write or pool timeout, or the per-attempt deadline) during which our own event loop stalled
for at least ``LOOP_LAG_TIMEOUT_FRACTION`` (25 %) of the timeout that fired: reading an answer
takes a handful of loop turns (connect, send, read, parse), so when one turn alone took a quarter
of the timeout, the turns could have used it all up and the timeout says nothing about the
provider. Such a failure is ``breaker.record_skipped("event_loop_lag")`` (metric
``provider_breaker_skipped_failures_total``) and logged; the call's outcome (the exception, its
retries, ``provider_calls_total``) is exactly what it would have been. Refused connections, 429,
5xx and dropped connections always count. The lag comes from ``loop_lag.monitor()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from payment_service.providers import loop_lag
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from payment_service.providers.metrics import PROVIDER_CALLS, PROVIDER_LATENCY, PROVIDER_RETRIES
from payment_service.providers.settings import ProviderSettings

log = structlog.get_logger(__name__)

LOOP_LAG_TIMEOUT_FRACTION = 0.25
SKIPPED_LOOP_LAG = "event_loop_lag"


class _NotSent(ProviderUnavailable):
    """ProviderUnavailable where the request provably never reached the provider."""


class _CircuitOpen(_NotSent):
    pass


def breaker_for(provider: str, settings: ProviderSettings) -> CircuitBreaker:
    b = settings.breaker
    return CircuitBreaker(
        provider,
        failure_threshold=b.failure_threshold,
        window_seconds=b.window_seconds,
        open_seconds=b.open_seconds,
        half_open_probes=b.half_open_probes,
    )


class ProviderHTTP:
    def __init__(
        self,
        provider: str,
        settings: ProviderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        lag_monitor: Callable[[], loop_lag.LoopLagMonitor] = loop_lag.monitor,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.breaker = breaker or breaker_for(provider, settings)
        self._lag_monitor = lag_monitor
        self.client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            timeout=httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds),
            transport=transport,
            headers=dict(headers or {}),
            auth=auth,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        mutating: bool,
        idempotent: bool,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; returns any response below 500 (except 429/503), raises otherwise."""

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, _CircuitOpen):
                return False
            if isinstance(exc, _NotSent):
                return True
            return idempotent and isinstance(exc, ProviderUnavailable | ProviderTimeout)

        def before_sleep(_: RetryCallState) -> None:
            PROVIDER_RETRIES.labels(self.provider, operation).inc()

        s = self.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, s.max_attempts)),
            wait=wait_random_exponential(multiplier=s.backoff_initial_seconds, max=s.backoff_max_seconds),
            retry=retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(operation, method, url, mutating=mutating, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, operation: str, method: str, url: str, *, mutating: bool, **kwargs: Any) -> httpx.Response:
        if not self.breaker.allow():
            PROVIDER_CALLS.labels(self.provider, operation, "circuit_open").inc()
            raise _CircuitOpen(
                f"{self.provider}: circuit open",
                provider=self.provider,
                operation=operation,
                provider_code="circuit_open",
            )
        started = time.perf_counter()
        lag = self._lag_monitor()
        lag_since = lag.now()
        try:
            try:
                async with asyncio.timeout(self.settings.total_timeout_seconds):
                    response = await self.client.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise _NotSent(
                    f"{self.provider}: cannot connect ({type(exc).__name__})",
                    provider=self.provider,
                    operation=operation,
                ) from exc
            except (TimeoutError, httpx.HTTPError) as exc:
                raise self._unknown(operation, mutating, f"no answer ({type(exc).__name__})") from exc
            if response.status_code in (429, 503):
                raise _NotSent(
                    f"{self.provider}: HTTP {response.status_code}, not processed",
                    provider=self.provider,
                    operation=operation,
                    provider_code=str(response.status_code),
                )
            if response.status_code >= 500:
                raise self._unknown(operation, mutating, f"HTTP {response.status_code}", str(response.status_code))
        except ProviderError as exc:
            self._record_failure(exc, operation, lag, lag_since)
            outcome = "timeout" if isinstance(exc, ProviderTimeout) else "unavailable"
            PROVIDER_CALLS.labels(self.provider, operation, outcome).inc()
            PROVIDER_LATENCY.labels(self.provider, operation).observe(time.perf_counter() - started)
            log.warning("provider_call_failed", provider=self.provider, operation=operation, error=exc.message)
            raise
        self.breaker.record_success()
        PROVIDER_LATENCY.labels(self.provider, operation).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(self.provider, operation, "ok" if response.status_code < 400 else "http_4xx").inc()
        return response

    def _record_failure(
        self, exc: ProviderError, operation: str, lag: loop_lag.LoopLagMonitor, lag_since: float
    ) -> None:
        timeout = self._timeout_seconds(exc.__cause__)
        if timeout is not None:
            stall = lag.max_lag_since(lag_since)
            threshold = LOOP_LAG_TIMEOUT_FRACTION * timeout
            if stall >= threshold:
                self.breaker.record_skipped(SKIPPED_LOOP_LAG)
                log.warning(
                    "provider_failure_not_counted",
                    provider=self.provider,
                    operation=operation,
                    reason=SKIPPED_LOOP_LAG,
                    loop_lag_seconds=round(stall, 3),
                    threshold_seconds=round(threshold, 3),
                    timeout_seconds=timeout,
                    error=exc.message,
                )
                return
        self.breaker.record_failure()

    def _timeout_seconds(self, cause: BaseException | None) -> float | None:
        """The timeout that fired, if ``cause`` is a timeout; None for any other failure."""
        t = self.client.timeout
        limit: float | None
        if isinstance(cause, httpx.ConnectTimeout):
            limit = t.connect
        elif isinstance(cause, httpx.ReadTimeout):
            limit = t.read
        elif isinstance(cause, httpx.WriteTimeout):
            limit = t.write
        elif isinstance(cause, httpx.PoolTimeout):
            limit = t.pool
        elif isinstance(cause, TimeoutError | httpx.TimeoutException):
            limit = None
        else:
            return None
        return self.settings.total_timeout_seconds if limit is None else min(limit, self.settings.total_timeout_seconds)

    def _unknown(self, operation: str, mutating: bool, what: str, code: str | None = None) -> ProviderError:
        if mutating:
            return ProviderTimeout(
                f"{self.provider}: {what}; outcome unknown",
                provider=self.provider,
                operation=operation,
                provider_code=code,
            )
        return ProviderUnavailable(
            f"{self.provider}: {what}", provider=self.provider, operation=operation, provider_code=code
        )
