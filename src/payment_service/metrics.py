"""Prometheus metrics shared by the API and the worker (RED per route, outbox lag, consumers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route template, method and status", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being served now")
HTTP_PARKED = Gauge("http_requests_parked", "Long-polls waiting for a change, not counted as in flight")
HTTP_SHED = Counter("http_requests_shed_total", "Requests refused with 503 because of overload")
IDEMPOTENT_REPLAYS = Counter("idempotency_replays_total", "Responses replayed from a stored Idempotency-Key")
FAST_PATH_REQUESTS = Counter(
    "http_fast_path_requests_total",
    "Mutating requests tried on a one-statement fast path: outcome 'done', or why the general path took it "
    "(unknown_accounts, insufficient_funds, key_exists, key_busy, not_wallet, a problem code, sqlstate_40P01 ...)",
    ["path", "outcome"],
)

OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox events acknowledged by the broker", ["topic"])
OUTBOX_PUBLISH_ERRORS = Counter("outbox_publish_errors_total", "Failed outbox publish batches")
OUTBOX_PENDING = Gauge("outbox_pending_events", "Outbox events not yet acknowledged by the broker")
OUTBOX_LAG = Gauge("outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox event")
OUTBOX_PUBLISH_LAG = Histogram(
    "outbox_commit_to_publish_seconds",
    "Time from outbox row creation to broker acknowledgement",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)

CONSUMED = Counter("consumer_events_total", "Consumed events by topic and outcome", ["topic", "outcome"])
DEAD_LETTERS = Counter("consumer_dead_letters_total", "Events moved to the dead-letter topic", ["topic"])
