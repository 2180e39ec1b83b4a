"""The wallet module has no tables of its own: a wallet IS a ledger account (``user:{id}:wallet``),
read and moved only through ``ledger.service``. Queries that need more than the ledger offers
(e.g. wallets of many users for a report) belong in ``ledger/repository.py`` behind a ledger
service function, so that ``ledger/`` stays the only module that knows its tables."""
