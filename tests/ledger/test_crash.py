"""Crashes in the middle of a multi-leg posting leave nothing half-posted.

* The database connection is killed (``pg_terminate_backend``) while the posting function is
  stopped halfway: the transfer row, the locked wallet update and the hot-account deltas are
  written, the entries are not yet.
* The client process is killed (SIGKILL) with a posting done but its transaction not committed.
* The client process is killed while its single-statement posting is blocked halfway; the server
  finishes the statement on its own, so the posting is whole, and a retry with the same key
  returns it instead of posting twice.

After each crash: no trace or the whole transfer (never part of it), G1 holds, the wallet is not
left locked, and a retry with the same key behaves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest

from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.resources import Resources
from tests.ledger.helpers import NOW, audit, fund, rub

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
WALLET = accounts.user_wallet("crash")
DEVELOPER = accounts.developer_balance("crash-studio")
FEES = accounts.platform_fees()
VAT = accounts.platform_vat_payable()
PURCHASE = [Posting(WALLET, DEVELOPER, rub(700)), Posting(WALLET, FEES, rub(200)), Posting(WALLET, VAT, rub(100))]


@pytest.fixture
async def url(db: Resources) -> str:
    dsn = db.settings.db.url.get_secret_value()
    async with _connect(dsn) as conn:
        await fund(conn, WALLET, 1_000, key="seed")
        await ledger_service.ensure_accounts(conn, [DEVELOPER, FEES, VAT])
    return dsn


class _connect:
    def __init__(self, dsn: str, **kw: object) -> None:
        self.dsn, self.kw = dsn, kw

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn = await asyncpg.connect(self.dsn, **self.kw)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


async def _wait_for(conn: asyncpg.Connection, query: str, *args: object, timeout: float = 20.0) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await conn.fetchval(query, *args)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {query}")
        await asyncio.sleep(0.05)


async def _assert_untouched(conn: asyncpg.Connection, key: str) -> None:
    assert await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = $1", key) == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE account_id <> ALL($1::uuid[])",
            [WALLET.id, accounts.external_world().id],
        )
        == 0
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM ledger_account_deltas WHERE account_id = ANY($1::uuid[])",
            [DEVELOPER.id, FEES.id, VAT.id],
        )
        == 0
    )
    balance = await ledger_service.balance(conn, WALLET)
    assert (balance.posted, balance.available) == (rub(1_000), rub(1_000))
    assert await audit(conn) == []


async def _post_purchase(conn: asyncpg.Connection, key: str) -> bool:
    t = await ledger_service.transfer(
        conn, postings=PURCHASE, idempotency_key=key, reference="order:crash", reason="order_payment", now=NOW
    )
    return t.replayed


async def test_killing_the_connection_halfway_through_a_posting_leaves_no_trace(url: str) -> None:
    async with _connect(url) as observer, _connect(url) as blocker, _connect(url) as poster:
        poster_pid = await poster.fetchval("SELECT pg_backend_pid()")
        blocker_tx = blocker.transaction()
        await blocker_tx.start()
        # Entries are the last thing the posting function writes: hold it right there.
        await blocker.execute("LOCK TABLE ledger_entries IN EXCLUSIVE MODE")
        posting = asyncio.create_task(_post_purchase(poster, "purchase"))
        await _wait_for(
            observer,
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
            poster_pid,
        )
        # Halfway indeed: the function has already written and locked what comes before the entries.
        locked = await observer.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'transactionid'", poster_pid
        )
        assert locked == 1

        await observer.fetchval("SELECT pg_terminate_backend($1)", poster_pid)

        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.ConnectionDoesNotExistError, OSError)):
            await posting
        await blocker_tx.rollback()
        await _assert_untouched(observer, "purchase")
        # the wallet row is not left locked, and the same key now posts once
        async with _connect(url, server_settings={"lock_timeout": "2000"}) as retry:
            assert await _post_purchase(retry, "purchase") is False
            assert await _post_purchase(retry, "purchase") is True
        assert (await ledger_service.balance(observer, WALLET)).posted == rub(0)
        assert await audit(observer) == []


_CLIENT = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import UTC, datetime
    import asyncpg
    from payment_service.kit.money import Money
    from payment_service.ledger import accounts
    from payment_service.ledger import service as ledger_service
    from payment_service.ledger.schemas import Posting

    async def main():
        conn = await asyncpg.connect(os.environ["DSN"], server_settings={"application_name": "crash-client"})
        wallet = accounts.user_wallet("crash")
        postings = [
            Posting(wallet, accounts.developer_balance("crash-studio"), Money(700, "RUB")),
            Posting(wallet, accounts.platform_fees(), Money(200, "RUB")),
            Posting(wallet, accounts.platform_vat_payable(), Money(100, "RUB")),
        ]
        if os.environ["MODE"] == "uncommitted":
            tx = conn.transaction()
            await tx.start()
        print("posting", flush=True)
        await ledger_service.transfer(
            conn, postings=postings, idempotency_key="purchase", reference="order:crash",
            reason="order_payment", now=datetime.now(UTC),
        )
        print("posted", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def _start_client(url: str, mode: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "DSN": url, "MODE": mode, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, env=env, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT)
    )


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def test_killing_the_process_before_commit_leaves_no_trace(url: str) -> None:
    client = await _start_client(url, "uncommitted")
    try:
        assert client.stdout is not None
        assert await asyncio.wait_for(client.stdout.readline(), 30) == b"posting\n"
        assert await asyncio.wait_for(client.stdout.readline(), 30) == b"posted\n"
    finally:
        await _kill(client)

    async with _connect(url) as observer:
        await _wait_for(observer, "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'crash-client'")
        await _assert_untouched(observer, "purchase")


async def test_killing_the_process_during_a_posting_leaves_it_whole_and_a_retry_replays_it(url: str) -> None:
    async with _connect(url) as observer, _connect(url) as blocker:
        blocker_tx = blocker.transaction()
        await blocker_tx.start()
        await blocker.execute("LOCK TABLE ledger_entries IN EXCLUSIVE MODE")
        client = await _start_client(url, "autocommit")
        try:
            assert client.stdout is not None
            assert await asyncio.wait_for(client.stdout.readline(), 30) == b"posting\n"
            await _wait_for(
                observer,
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'crash-client'"
                " AND wait_event_type = 'Lock'",
            )
        finally:
            await _kill(client)
        await blocker_tx.rollback()
        await _wait_for(observer, "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'crash-client'")

        stored = await observer.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = 'purchase'")
        entries = await observer.fetchval(
            "SELECT count(*) FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id"
            " WHERE t.idempotency_key = 'purchase'"
        )
        # all or nothing (the server finishes a statement whose client is gone, then commits it)
        assert (stored, entries) in {(0, 0), (1, 4)}
        assert await audit(observer) == []
        replayed = await _post_purchase(observer, "purchase")
        assert replayed is (stored == 1)
        assert (await ledger_service.balance(observer, WALLET)).posted == rub(0)
        assert await audit(observer) == []
