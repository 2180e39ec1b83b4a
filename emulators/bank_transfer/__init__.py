"""Bank-transfer emulator: our bank's transfer API v1 (``/v1/transfers``), documented in docs/payouts.md."""
