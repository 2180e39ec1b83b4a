from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from payment_service.providers.errors import ProviderUnavailable
from payment_service.providers.ports import PaymentRef
from tests.providers.harness import Harness


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_calls_are_counted_by_outcome(tbank: Harness) -> None:
    ok_before = value("provider_calls_total", provider="tbank", operation="Init", outcome="ok")
    down_before = value("provider_calls_total", provider="tbank", operation="Init", outcome="unavailable")
    latency_before = value("provider_call_duration_seconds_count", provider="tbank", operation="Init")

    created = await tbank.adapter.authorize(tbank.request(10_000))
    await tbank.adapter.get_status(PaymentRef("k", created.provider_payment_id))
    with pytest.raises(ProviderUnavailable):
        await tbank.adapter.authorize(tbank.request(10_052))

    assert value("provider_calls_total", provider="tbank", operation="Init", outcome="ok") == ok_before + 1
    assert value("provider_calls_total", provider="tbank", operation="Init", outcome="unavailable") >= down_before + 1
    assert value("provider_call_duration_seconds_count", provider="tbank", operation="Init") >= latency_before + 2
