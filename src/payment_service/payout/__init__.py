"""The payout engine: payee accounts, payouts and their provider attempts, batches."""
