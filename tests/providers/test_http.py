"""Retries, deadlines and the breaker in the shared HTTP layer."""

from __future__ import annotations

import httpx
import pytest

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import BreakerState
from payment_service.providers.errors import ProviderTimeout, ProviderUnavailable
from payment_service.providers.settings import BreakerSettings, ProviderSettings

FAST = ProviderSettings(
    base_url="http://p.test",
    max_attempts=3,
    backoff_initial_seconds=0.001,
    backoff_max_seconds=0.002,
    total_timeout_seconds=0.5,
    breaker=BreakerSettings(failure_threshold=2, window_seconds=60, open_seconds=60),
)


def client(handler: httpx.MockTransport) -> ProviderHTTP:
    return ProviderHTTP("p", FAST.model_copy(deep=True), transport=handler)


class Counter:
    def __init__(self, *responses: object) -> None:
        self.responses = list(responses)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        r = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(r, Exception):
            raise r
        assert isinstance(r, httpx.Response)
        return r


async def test_connect_error_is_retried_even_for_non_idempotent_calls() -> None:
    calls = Counter(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    http = client(httpx.MockTransport(calls))

    response = await http.request("create", "POST", "/x", mutating=True, idempotent=False)

    assert response.status_code == 200
    assert calls.calls == 2


async def test_read_timeout_of_a_non_idempotent_call_is_not_retried() -> None:
    calls = Counter(httpx.ReadTimeout("slow"))
    http = client(httpx.MockTransport(calls))

    with pytest.raises(ProviderTimeout):
        await http.request("create", "POST", "/x", mutating=True, idempotent=False)

    assert calls.calls == 1


async def test_idempotent_call_is_retried_on_500() -> None:
    calls = Counter(httpx.Response(500), httpx.Response(200, json={}))
    http = client(httpx.MockTransport(calls))

    response = await http.request("create", "POST", "/x", mutating=True, idempotent=True)

    assert response.status_code == 200
    assert calls.calls == 2


async def test_read_failure_is_unavailable_not_timeout() -> None:
    http = client(httpx.MockTransport(Counter(httpx.ReadTimeout("slow"))))

    with pytest.raises(ProviderUnavailable):
        await http.request("get", "GET", "/x", mutating=False, idempotent=True)


async def test_breaker_opens_and_then_refuses_without_calling() -> None:
    calls = Counter(httpx.Response(503))
    http = client(httpx.MockTransport(calls))

    with pytest.raises(ProviderUnavailable):
        await http.request("create", "POST", "/x", mutating=True, idempotent=False)
    seen = calls.calls
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        await http.request("create", "POST", "/x", mutating=True, idempotent=False)

    assert http.breaker.state is BreakerState.open
    assert calls.calls == seen == 2


async def test_4xx_is_returned_to_the_adapter() -> None:
    http = client(httpx.MockTransport(Counter(httpx.Response(400, json={"e": 1}))))

    response = await http.request("create", "POST", "/x", mutating=True, idempotent=True)

    assert response.status_code == 400
    assert http.breaker.state is BreakerState.closed
