"""Database engine, sessions, and the one place that commits.

One transaction per request and per job: the request's unit of work (``kit/unit_of_work``)
or the job wrapper commits on success and rolls back on error. Services only ``flush()``;
the single exception is :func:`checkpoint`, which commits before a call to a provider so that
no transaction stays open across the network and the attempt exists before we call out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from payment_service.config import DatabaseSettings
from payment_service.kit import idempotency

log = structlog.get_logger(__name__)


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as DATABASE_URL usually is) and use asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def asyncpg_dsn(url: str) -> str:
    """The same URL for raw asyncpg connections (LISTEN/NOTIFY, benchmarks)."""
    return sqlalchemy_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def create_engine(settings: DatabaseSettings, *, application_name: str = "payment-service") -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(settings.url.get_secret_value()),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=settings.pool_recycle_seconds,
        pool_pre_ping=False,
        echo=settings.echo,
        connect_args={
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(settings.statement_timeout_ms),
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine, *, waker: CommitWaker | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions of the process. With ``waker``, what a transaction asked to be woken
    (:func:`wake_after_commit`) is notified after its COMMIT; without one (scripts, the CLI) the
    listeners find the rows at their next fallback poll."""
    info = {_WAKER: waker} if waker is not None else None
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=_WakingSession, info=info
    )


# ── wake-ups after commit ────────────────────────────────────────────────────────────────────
#
# A listener (the outbox relay, the webhook applier) learns of new rows by a Postgres NOTIFY. A
# NOTIFY issued inside the writer's transaction makes its COMMIT take a database-wide lock held
# until the commit's WAL flush is done (PreCommit_Notify in Postgres' async.c: it keeps the
# queue in commit order), so every writer that notifies commits one after another: measured
# here, 64 concurrent wallet donations spent most of their time waiting on that lock
# ("Lock:object" in pg_stat_activity) and throughput was capped at 1 / fsync time. So a writer
# only marks its session (:func:`wake_after_commit`); after the COMMIT the process's
# :class:`CommitWaker` sends the NOTIFY from its own connection (``synchronous_commit = off``:
# no WAL flush under the lock), folding the wake-ups of many commits into one statement. A lost
# wake-up (the waker's connection down) costs latency only: every listener also polls.

_WAKER = "commit_waker"
_CHANNELS = "wake_channels"


class _WakingSession(Session):
    """The sync session behind every AsyncSession of :func:`create_sessionmaker`."""


Wake = tuple[str, str]
"""A NOTIFY to send: (channel, payload)."""


def wake_after_commit(session: AsyncSession, channel: str, payload: str = "") -> None:
    """NOTIFY ``channel`` (with ``payload``, e.g. the id of what changed, for :class:`ChangeListener`)
    once the session's transaction has committed; nothing if it rolls back."""
    wakes = session.info.get(_CHANNELS)
    if wakes is None:
        session.info[_CHANNELS] = {(channel, payload)}
    else:
        wakes.add((channel, payload))


@event.listens_for(_WakingSession, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: nothing is visible to others before the outer COMMIT
    idempotency.forget_fence_check(session.info)  # the next transaction checks the token again
    wakes = session.info.pop(_CHANNELS, None)
    waker = session.info.get(_WAKER)
    if wakes and waker is not None:
        try:
            waker.wake(wakes)
        except Exception as exc:  # the transaction has committed: never fail the request now
            log.warning("commit_wake_failed", channels=sorted({c for c, _ in wakes}), error=repr(exc))


@event.listens_for(_WakingSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    idempotency.forget_fence_check(session.info)  # a savepoint's rollback releases the row lock too
    if session.in_nested_transaction():
        return  # a savepoint rolled back: what the outer transaction wrote may still commit
    session.info.pop(_CHANNELS, None)


class CommitWaker:
    """Sends the NOTIFYs of committed transactions from one connection of its own (outside the
    pool: a pool saturated by requests must not delay wake-ups). At most one statement is in
    flight; wake-ups asked for meanwhile go out together in the next one.

    The NOTIFY's own transaction still takes Postgres' notification lock and gets a transaction
    id, so its connection runs with ``synchronous_commit = off``: the lock is then not held across
    a WAL flush (a notification is not durable anyway: listeners that miss one poll). After a
    failure the waker stays quiet for ``retry_after`` seconds (one warning, no reconnect storm
    when the database refuses connections), leaving the rows to the listeners' poll."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 2.0,
        retry_after: float = 1.0,
        application_name: str = "payment-service-waker",
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._retry_after = retry_after
        self._application_name = application_name
        self._pending: set[Wake] = set()
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._quiet_until = 0.0
        self._closed = False
        self.sent = 0
        """Statements sent (each may carry many wake-ups)."""

    def wake(self, wakes: Iterable[str | Wake]) -> None:
        """Ask for a NOTIFY per channel (a bare name: empty payload) or per (channel, payload); returns
        at once (must run on the event loop). Duplicates pending together go out once."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._quiet_until:
            return  # failing: the listeners' poll finds the rows
        self._pending.update((w, "") if isinstance(w, str) else w for w in wakes)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._send())

    async def _send(self) -> None:
        while self._pending and not self._closed:
            wakes = sorted(self._pending)
            self._pending.clear()
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        self._dsn,
                        timeout=self._connect_timeout,
                        server_settings={
                            "application_name": self._application_name,
                            "synchronous_commit": "off",
                            "statement_timeout": str(int(self._statement_timeout * 1000)),
                        },
                    )
                await self._conn.execute(
                    "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS w(c, p)",
                    [c for c, _ in wakes],
                    [p for _, p in wakes],
                    timeout=self._statement_timeout,
                )
                self.sent += 1
            except Exception as exc:
                log.warning("commit_wake_failed", channels=sorted({c for c, _ in wakes}), error=repr(exc))
                self._pending.clear()
                self._quiet_until = asyncio.get_running_loop().time() + self._retry_after
                await self._drop()
                return

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=self._statement_timeout + 1)
        await self._drop()


MAX_RECHECK_STRETCH = 15.0
"""The longest a waiter goes without reading its state when many wait (seconds)."""


class TooManyWaiters(Exception):
    """:meth:`ChangeListener.watch` refused a waiter: ``per_owner`` (one owner holds its share) or
    the process's bound."""

    def __init__(self, *, per_owner: bool) -> None:
        super().__init__("per owner" if per_owner else "per process")
        self.per_owner = per_owner


class ChangeListener:
    """Wake-ups for long-polls: one LISTEN connection per process, of its own (outside the pool).

    A waiter registers what it waits for, a (channel, key) pair whose key is the payload writers
    send with :func:`wake_after_commit` (a payment's id, say), *before* it reads the current state:
    a change committed between its read and its wait still wakes it. A NOTIFY with that payload
    sets the waiter's event and the waiter reads again. Nothing here is trusted for correctness:
    a waiter always reads the state itself, the NOTIFY only says when, and a NOTIFY can be lost
    (the waker quiet after a failure, a writer without a waker), so :meth:`wait` also returns
    every ``recheck_interval`` (±20 %) and the waiter reads anyway.

    Waiters' reads are bounded: at most ``max_concurrent_reads`` at once per process
    (:meth:`read_slot`), and the recheck interval stretches (up to ``MAX_RECHECK_STRETCH``) so
    that rechecks stay under ``max_recheck_rate`` per second (5,000 waiters rechecking every 5 s
    would be 1,000 reads/s; measured, they took the pool from the requests that create work). A
    long-poll's deadline is a recheck of its own.

    The connection is opened by the first :meth:`listen`, pinged every ``ping_interval`` (a
    half-open connection is dropped, not trusted forever) and re-opened by a later :meth:`listen`
    after a loss (at most once per ``retry_after`` while the database refuses). While it is down
    :attr:`listening` is False and :meth:`wait` returns every ``poll_interval`` (±20 %, so that
    waiters do not read in step). At most ``max_waiters`` wait at once and ``max_per_owner`` per
    owner (:meth:`watch` raises :class:`TooManyWaiters`). :meth:`stop_waiting` (graceful shutdown)
    releases every waiter and makes later ones answer at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_waiters: int = 10_000,
        max_per_owner: int = 20,
        max_concurrent_reads: int = 4,
        max_recheck_rate: float = 100.0,
        recheck_interval: float = 5.0,
        poll_interval: float = 2.0,
        ping_interval: float = 15.0,
        connect_timeout: float = 5.0,
        retry_after: float = 1.0,
        application_name: str = "payment-service-listener",
    ) -> None:
        self._dsn = dsn
        self.max_waiters = max_waiters
        self.max_per_owner = max_per_owner
        self.recheck_interval = recheck_interval
        self.max_recheck_rate = max_recheck_rate
        self.poll_interval = poll_interval
        self._max_concurrent_reads = max_concurrent_reads
        self._reads: asyncio.Semaphore | None = None
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._retry_after = retry_after
        self._application_name = application_name
        self._waiters: dict[Wake, set[asyncio.Event]] = {}
        self._owners: dict[str, int] = {}
        self._channels: set[str] = set()
        self._conn: Any = None
        self._pinger: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._quiet_until = 0.0
        self._stopping = False
        self._closed = False
        self._random = random.Random()
        self.waiting = 0
        """Waiters registered now."""

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def listen(self, channel: str) -> bool:
        """Make sure the connection LISTENs on ``channel``; False when it cannot now (waiters poll)."""
        if self.listening and channel in self._channels:
            return True
        if self._closed or self._stopping:
            return False
        loop = asyncio.get_running_loop()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self.listening:
                if loop.time() < self._quiet_until:
                    return False
                self._channels.clear()
                try:
                    conn = await asyncpg.connect(
                        self._dsn,
                        timeout=self._connect_timeout,
                        server_settings={"application_name": self._application_name},
                    )
                except Exception as exc:
                    log.warning("change_listener_connect_failed", error=repr(exc))
                    self._quiet_until = loop.time() + self._retry_after
                    return False
                if self._closed:  # closed while connecting
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
                    return False
                conn.add_termination_listener(self._on_lost)
                self._conn = conn
                self._pinger = loop.create_task(self._ping(conn))
            if channel not in self._channels:
                try:
                    await self._conn.add_listener(channel, self._on_notify)
                except Exception as exc:
                    log.warning("change_listener_listen_failed", channel=channel, error=repr(exc))
                    await self._drop()
                    self._quiet_until = loop.time() + self._retry_after
                    return False
                self._channels.add(channel)
        return True

    @contextlib.contextmanager
    def watch(self, channel: str, key: str, *, owner: str | None = None) -> Iterator[asyncio.Event | None]:
        """Register a waiter for ``key`` on ``channel`` for the block and yield its event; None
        when the listener is stopping (answer at once). Raises :class:`TooManyWaiters` beyond
        ``max_waiters``, or beyond ``max_per_owner`` for ``owner`` (when given)."""
        if self._stopping:
            yield None
            return
        if self.waiting >= self.max_waiters:
            raise TooManyWaiters(per_owner=False)
        if owner is not None:
            if self._owners.get(owner, 0) >= self.max_per_owner:
                raise TooManyWaiters(per_owner=True)
            self._owners[owner] = self._owners.get(owner, 0) + 1
        event = asyncio.Event()
        self._waiters.setdefault((channel, key), set()).add(event)
        self.waiting += 1
        try:
            yield event
        finally:
            self.waiting -= 1
            waiters = self._waiters.get((channel, key))
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[(channel, key)]
            if owner is not None:
                left = self._owners.get(owner, 1) - 1
                if left > 0:
                    self._owners[owner] = left
                else:
                    self._owners.pop(owner, None)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Sleep until ``event`` is set or ``timeout`` passes, but at most ``recheck_interval``
        (``poll_interval`` while not listening), ±20 %; then clear the event. The caller reads
        its state after every return. False when it should stop waiting (shutdown)."""
        if self._stopping:
            return False
        interval = self.recheck_interval if self.listening else self.poll_interval
        interval = max(interval, min(self.waiting / self.max_recheck_rate, MAX_RECHECK_STRETCH))
        cap = interval * self._random.uniform(0.8, 1.2)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, cap)):
                await event.wait()
        event.clear()
        return not self._stopping

    async def read_slot(
        self, timeout: float, *, gone: asyncio.Future[None] | None = None
    ) -> contextlib.AbstractAsyncContextManager[None] | None:
        """One of the process's ``max_concurrent_reads`` slots for a waiter's read, acquired within
        ``timeout`` seconds (None if not, or once ``gone`` completes: its client left): use it as
        ``async with slot:`` to read, then it is free."""
        if gone is not None and gone.done():
            return None
        if self._reads is None:
            self._reads = asyncio.Semaphore(self._max_concurrent_reads)
        reads = self._reads
        if gone is not None and reads.locked():  # a wait for a slot: give up when the client leaves
            acquiring: asyncio.Future[Any] = asyncio.ensure_future(reads.acquire())
            either: set[asyncio.Future[Any]] = {acquiring, gone}
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not acquiring.done():
                acquiring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquiring
            if acquiring.cancelled():
                return None
            if gone.done():  # acquired just as the client left: give the slot back
                reads.release()
                return None
        else:
            try:
                async with asyncio.timeout(timeout):
                    await reads.acquire()
            except TimeoutError:
                return None

        @contextlib.asynccontextmanager
        async def held() -> AsyncIterator[None]:
            try:
                yield
            finally:
                reads.release()

        return held()

    def stop_waiting(self) -> None:
        """Release every waiter now and make every later one answer at once (shutting down)."""
        self._stopping = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for waiter in self._waiters.get((channel, payload), ()):
            waiter.set()

    def _on_lost(self, conn: Any) -> None:
        # Waiters are not woken all at once (a burst of reads just when the database is
        # restarting): each reads at its next recheck, then polls until a long-poll reconnects.
        if conn is self._conn:
            self._conn = None
            self._channels.clear()

    async def _ping(self, conn: Any) -> None:
        """Drop the connection when it stops answering (a half-open TCP connection never closes)."""
        while conn is self._conn and not conn.is_closed():
            await asyncio.sleep(self._ping_interval)
            try:
                await self._probe(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if conn is self._conn:
                    log.warning("change_listener_lost", error=repr(exc))
                    await self._drop()
                return

    async def _probe(self, conn: Any) -> None:
        await conn.fetchval("SELECT 1", timeout=self._connect_timeout)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._channels.clear()
        pinger, self._pinger = self._pinger, None
        if pinger is not None and pinger is not asyncio.current_task():
            pinger.cancel()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def close(self) -> None:
        self._closed = True
        self.stop_waiting()
        await self._drop()


async def release(session: AsyncSession) -> None:
    """Give a read session's connection back to the pool (before a long wait); the session takes
    one again on its next statement. Read sessions only: a write session would lose its work."""
    await session.close()


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work for jobs and scripts: commit on success, roll back on any error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def checkpoint(session: AsyncSession) -> None:
    """Commit what the request has done so far, before calling a provider.

    The only commit a service may make (see module docstring). After it, the session opens a
    new transaction on first use, in which the provider's answer is applied. In a request under
    an Idempotency-Key the commit is fenced: when a retry took the key over meanwhile, it raises
    ``IdempotencyKeyInUse`` instead and the work since the last commit rolls back.
    """
    await idempotency.check_fence(session)
    await session.commit()
