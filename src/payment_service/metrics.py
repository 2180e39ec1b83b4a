"""Prometheus metrics shared by the API and the worker (RED per route, outbox lag, consumers)."""

from __future__ import annotations

import gc
import time

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


# ── garbage collector ────────────────────────────────────────────────────────────────────────
#
# A full (generation 2) collection walks every object the process holds and stops the event loop
# meanwhile; in an API process of ~180 MB that is long enough to show in a WebSocket alert's
# latency. The pauses are measured here; ``freeze_startup_objects`` keeps what start-up created
# (modules, classes, mappers, schemas: most of the heap of a fresh process) out of all later
# collections.

GC_PAUSE = Histogram(
    "python_gc_pause_seconds",
    "Duration of each garbage collection (the event loop is stopped meanwhile)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
_gc_started: list[float] = []


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        GC_PAUSE.labels(str(info.get("generation", -1))).observe(time.perf_counter() - _gc_started.pop())


def watch_gc() -> None:
    """Observe every collection's pause in ``python_gc_pause_seconds`` (idempotent)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now to the permanent generation (``gc.freeze``):
    later collections no longer walk what start-up built. Call when start-up is done."""
    gc.collect()
    gc.freeze()
