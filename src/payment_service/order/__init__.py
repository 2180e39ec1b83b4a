"""Checkout: orders of catalog items paid by card/SBP/…, from the wallet, or both; wallet top-ups."""
