"""The collector's pauses are measured (``python_gc_pause_seconds``)."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from payment_service import metrics


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("python_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_every_collection_is_observed_with_its_generation() -> None:
    metrics.watch_gc()
    metrics.watch_gc()  # idempotent: one callback
    assert gc.callbacks.count(metrics._on_gc) == 1
    before = _count("2")
    gc.collect()
    assert _count("2") == before + 1
    total = REGISTRY.get_sample_value("python_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None
    assert total > 0
