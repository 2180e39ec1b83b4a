"""Wallet jobs.

Order payments from a wallet are ledger holds with an expiry; the ledger's expiry job
(``ledger.tasks.expire_holds``) releases the ones an order flow forgot to post or void, and the
fold job (``ledger.tasks.run_fold_loop``) keeps hot accounts such as the order clearing account
cheap to read. The wallet module needs no job of its own.
"""
