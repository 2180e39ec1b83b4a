"""Emulator of the platform's Game Catalog Service (items, regional prices, payees, release dates)."""
