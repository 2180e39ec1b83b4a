"""Payment Service of a game platform: payments, wallets, ledger, donations, payouts, receipts."""

__version__ = "0.1.0"
