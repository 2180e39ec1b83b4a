"""Payout metrics: statuses reached, failures by reason, open and stuck payouts (alert on these)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PAYOUT_STATUS = Counter("payouts_status_total", "Payouts reaching a status", ["status", "source", "provider"])
PAYOUT_FAILURES = Counter("payouts_failed_total", "Payouts that failed, by reason", ["source", "reason"])
PAYOUT_ATTEMPTS = Counter("payouts_attempts_total", "Provider attempts of payouts by outcome", ["provider", "outcome"])
PAYOUT_ANOMALIES = Counter(
    "payouts_provider_anomalies_total", "Provider answers we refused to apply", ["provider", "kind"]
)
PAYOUTS_OPEN = Gauge("payouts_open", "Payouts not finished yet", ["source", "status"])
PAYOUTS_STUCK = Gauge(
    "payouts_stuck", "Open payouts older than payouts.stuck_after_minutes (alert when > 0)", ["source", "status"]
)
