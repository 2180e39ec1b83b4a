"""Per-request samples and what the report makes of them: percentiles and per-second series.

Every driver records one :data:`Sample` per request (or per end-to-end flow): the wall-clock time
it finished, its latency and its outcome. Wall time (``time.time()``), not a monotonic clock, so
that samples from several load processes and the monitor of the main process share one time axis.

This module is imported by the load processes: standard library only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

Sample = tuple[float, float, str]
"""(wall time the request finished, latency in ms, outcome)."""

OK = "ok"
"""Succeeded (2xx, or the flow reached the expected final state)."""
DECLINED = "declined"
"""A flow that ended as the business outcome asked for (a declined card): not an error."""
SHED = "shed"
"""503 with Retry-After: the service refused the request explicitly (the client may retry)."""
SHED_NO_RETRY_AFTER = "shed_no_retry_after"
"""503 without Retry-After: a defect (the contract says every 503 carries it)."""
ERROR = "error"
"""Any other answer, a transport error, or a flow that ended in an unexpected state."""
TIMEOUT = "timeout"
"""No answer in time (client timeout, or a flow that did not finish before its deadline)."""
GAVE_UP = "gave_up"
"""A flow that stopped retrying after its last 503 (open-loop stress only)."""
DROPPED = "dropped"
"""An arrival the load generator did not send because its own bound of outstanding flows was hit."""

OUTCOMES = (OK, DECLINED, SHED, SHED_NO_RETRY_AFTER, ERROR, TIMEOUT, GAVE_UP, DROPPED)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of ``values`` (ms), rounded for the report."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 1),
        "p95_ms": round(percentile(ordered, 0.95), 1),
        "p99_ms": round(percentile(ordered, 0.99), 1),
        "max_ms": round(ordered[-1], 1) if ordered else 0.0,
    }


def counts(samples: Iterable[Sample]) -> dict[str, int]:
    found = Counter(s[2] for s in samples)
    return {o: found.get(o, 0) for o in OUTCOMES}


def per_second(samples: Iterable[Sample], start: float, end: float) -> dict[str, list[Any]]:
    """Bucket samples by the second (since ``start``) in which they finished.

    Returns parallel lists: ``t`` (seconds since start), one count list per outcome, and
    ``p50``/``p95``/``p99`` of the successful samples' latency in that second (None when the second
    had none).
    """
    seconds = max(1, math.ceil(end - start))
    by_outcome = {o: [0] * seconds for o in OUTCOMES}
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for done, latency, outcome in samples:
        i = int(done - start)
        if i < 0 or i >= seconds:
            continue
        by_outcome.setdefault(outcome, [0] * seconds)[i] += 1
        if outcome == OK:
            latencies[i].append(latency)
    series: dict[str, list[Any]] = {"t": list(range(seconds))}
    series.update({o: v for o, v in by_outcome.items() if any(v)})
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        series[name] = [round(percentile(lat, q), 1) if lat else None for lat in latencies]
    return series


def rate_in(samples: Iterable[Sample], start: float, end: float, outcome: str = OK) -> float:
    """Samples with ``outcome`` that finished in [start, end), per second."""
    if end <= start:
        return 0.0
    return sum(1 for done, _, o in samples if o == outcome and start <= done < end) / (end - start)
