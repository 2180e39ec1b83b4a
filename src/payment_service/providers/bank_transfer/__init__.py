"""Bank-transfer payout adapter (our bank's transfer API, documented in ``docs/payouts.md``)."""
