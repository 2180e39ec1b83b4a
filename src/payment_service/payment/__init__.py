"""Payments: intents with attempts bound to providers (see states.py for the lifecycle)."""
