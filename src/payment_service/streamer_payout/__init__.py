"""Streamer payouts: scheduled payouts of donation balances, statements."""
