"""Payment metrics: statuses reached, failover decisions, outcomes that need attention, long-polls."""

from __future__ import annotations

from prometheus_client import Counter

PAYMENT_STATUS = Counter("payments_status_total", "Payments reaching a status", ["status", "method"])
FAILOVERS = Counter(
    "payments_failover_total",
    "Attempts moved to the next provider after a definite failure",
    ["from_provider", "to_provider", "reason"],
)
UNRESOLVED = Counter("payments_provider_anomalies_total", "Provider answers we refused to apply", ["provider", "kind"])
LATE_SUCCESS = Counter(
    "payments_late_success_total", "Money received for a payment already expired/canceled/failed", ["provider"]
)
LONG_POLLS = Counter(
    "payment_long_polls_total",
    "Long-polls of a payment that was not final, by how the wait ended: changed, deadline, stopping "
    "(the server drains; also polls answered at once for that reason) or client_gone (the client "
    "disconnected)",
    ["outcome"],
)
