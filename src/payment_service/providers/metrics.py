"""Prometheus metrics of the provider layer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_CALLS = Counter(
    "provider_calls_total",
    "Provider API calls by provider, operation and outcome (ok, declined, unavailable, timeout, invalid, ...)",
    ["provider", "operation", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "provider_call_duration_seconds",
    "Provider API call latency (one HTTP attempt)",
    ["provider", "operation"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
PROVIDER_RETRIES = Counter("provider_retries_total", "Retried provider calls", ["provider", "operation"])
BREAKER_STATE = Gauge("provider_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["provider"])
BREAKER_SKIPPED_FAILURES = Counter(
    "provider_breaker_skipped_failures_total",
    "Failed provider calls NOT counted against the provider's breaker, by reason (event_loop_lag: a timeout "
    "while our own event loop stalled for a large part of the timeout)",
    ["provider", "reason"],
)
BREAKER_OPENED = Counter("provider_breaker_opened_total", "Times a provider's breaker opened", ["provider"])
WEBHOOKS = Counter("provider_webhooks_total", "Provider webhooks by outcome (ok, rejected)", ["provider", "outcome"])
EVENT_LOOP_LAG = Gauge(
    "payment_event_loop_lag_seconds",
    "How late this process's event loop woke a 50 ms sleeper: the largest lag of the last second",
)
