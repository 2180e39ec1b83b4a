"""Pure-ASGI middleware, outermost first:

1. :class:`RequestContextMiddleware` — X-Request-ID / X-Correlation-ID into contextvars, logs
   and the response; RED metrics per route template.
2. :class:`InFlightLimitMiddleware` — at most N requests at once; beyond it 503 + Retry-After
   instead of unbounded queueing (health and metrics are never shed).
3. :class:`BodyLimitMiddleware` — 413 for bodies over the limit, declared or streamed.
4. :class:`UnitOfWorkMiddleware` — the one transaction of a mutating ``/v1`` request, with its
   Idempotency-Key claim: replay, conflict, or run the endpoint and store its response in the
   same transaction, then commit before the first byte is sent. A route may register a
   one-statement fast path (:data:`FastPath`) tried first for a request under a new key.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import sqlalchemy.exc
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payment_service import metrics
from payment_service.auth import Principal, bearer_token, decode_token
from payment_service.config import Settings
from payment_service.errors import AppError, DatabaseBusy, problem_body
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.ledger.repository import DriverConnection
from payment_service.logging import correlation_id_var, request_id_var

log = structlog.get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNSHED_PREFIXES = ("/health", "/metrics")
PARK_STATE = "park_in_flight"
"""``request.state`` attribute: an async context manager factory under which a request does not
count as in flight (see :class:`InFlightLimitMiddleware`)."""
_STORED_HEADERS = ("content-type", "location")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


async def _send_problem(
    send: Send, scope: Scope, exc_or_status: AppError | int, headers: dict[str, str] | None = None, **kw: Any
) -> None:
    import orjson

    if isinstance(exc_or_status, AppError):
        exc = exc_or_status
        extra = dict(exc.extra)
        retry_after = extra.pop("retry_after", None)
        if retry_after is not None:
            headers = {**(headers or {}), "Retry-After": str(retry_after)}
        body = problem_body(
            code=exc.code,
            status=exc.status,
            title=exc.title,
            detail=exc.detail,
            instance=scope.get("path"),
            request_id=request_id_var.get(),
            **extra,
        )
        status = exc.status
    else:
        status = exc_or_status
        body = problem_body(status=status, instance=scope.get("path"), request_id=request_id_var.get(), **kw)
    raw = orjson.dumps(body)
    hdrs = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(raw)).encode())]
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode(), v.encode()))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        correlation = _header(scope, b"x-correlation-id")
        correlation_id = correlation if correlation and len(correlation) <= 128 else request_id
        rid_token = request_id_var.set(request_id)
        cid_token = correlation_id_var.set(correlation_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [500]
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            # Routers carry their full prefix (see api.py), so route.path is the whole template.
            template = f"{scope.get('root_path', '')}{path}" if path else "unmatched"
            method = scope.get("method", "")
            elapsed = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(template, method, str(status_holder[0])).inc()
            metrics.HTTP_LATENCY.labels(template, method).observe(elapsed)
            request_id_var.reset(rid_token)
            correlation_id_var.reset(cid_token)


WEBHOOK_PREFIX = "/v1/webhooks/"
"""Provider webhooks: their own in-flight budget here, and no unit of work (see ``main.py``)."""


class _Window:
    """Counts events in the current and the previous whole second (cheap, no timestamps kept)."""

    __slots__ = ("current", "previous", "second")

    def __init__(self) -> None:
        self.second = 0
        self.current = 0
        self.previous = 0

    def add(self, now: float) -> None:
        self._roll(now)
        self.current += 1

    def last_second(self, now: float) -> int:
        self._roll(now)
        return self.previous

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.previous = self.current if second == self.second + 1 else 0
            self.current = 0
            self.second = second


class InFlightLimitMiddleware:
    """Bounded in-flight requests: beyond the limit a request gets ``503 overloaded`` at once.

    * Provider webhooks have a budget of their own: they finish payments that already exist, so
      a flood of new checkouts must not starve them (the provider only retries for a while).
    * New work (mutating ``/v1`` requests) has a smaller budget inside the common one: under
      overload new checkouts are refused first while reads (status polls) and webhooks finish the
      payments already accepted. Without it, a 2× overload filled the process with creates whose
      customers then gave up waiting: goodput fell to a fifth of capacity (stress benchmark).
    * ``Retry-After`` grows with the overload: drawn uniformly between ``retry_after_seconds`` and
      about the seconds needed to serve the requests refused in the last second at the rate
      requests completed in it (at most ``max_retry_after_seconds``), so that thousands of refused
      clients come back spread over that window instead of in the same second.
    * A long-poll that waits for a change (``GET /v1/payments/{id}?wait=``) holds no worker, pool
      connection nor CPU: it *parks* (``request.state.park_in_flight``, an async context manager)
      and does not count as in flight while it waits; the listener bounds how many wait at once.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        webhook_limit: int | None = None,
        new_work_limit: int | None = None,
        retry_after_seconds: int = 1,
        max_retry_after_seconds: int = 30,
    ) -> None:
        self.app = app
        self.limit = limit
        self.webhook_limit = limit if webhook_limit is None else webhook_limit
        self.new_work_limit = limit if new_work_limit is None else min(limit, new_work_limit)
        self.retry_after = retry_after_seconds
        self.max_retry_after = max(retry_after_seconds, max_retry_after_seconds)
        self.in_flight = 0
        self.webhooks_in_flight = 0
        self.new_work_in_flight = 0
        self.parked = 0
        self.completed = _Window()
        self.shed = _Window()
        self._random = random.Random()

    def retry_after_for(self, now: float) -> int:
        """Seconds a refused client should wait (see the class docstring)."""
        backlog = self.shed.last_second(now) + 1
        rate = max(1, self.completed.last_second(now))
        wait = min(self.max_retry_after, max(self.retry_after, math.ceil(backlog / rate)))
        # Uniform over the whole window: the refused crowd comes back spread over ``wait`` seconds
        # at about the rate the process completes requests, not in a wave after ``wait`` seconds
        # (which leaves the process idle meanwhile).
        return self._random.randint(self.retry_after, wait)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNSHED_PREFIXES):
            await self.app(scope, receive, send)
            return
        webhook = scope["path"].startswith(WEBHOOK_PREFIX)
        new_work = not webhook and scope["method"] in MUTATING and scope["path"].startswith("/v1/")
        if webhook:
            busy = self.webhooks_in_flight >= self.webhook_limit
        else:
            busy = self.in_flight >= self.limit or (new_work and self.new_work_in_flight >= self.new_work_limit)
        if busy:
            now = time.monotonic()
            self.shed.add(now)
            metrics.HTTP_SHED.inc()
            await _send_problem(
                send,
                scope,
                503,
                headers={"Retry-After": str(self.retry_after_for(now))},
                code="overloaded",
                title="Service is at capacity",
                detail="Too many requests in flight; retry after the given delay",
            )
            return
        if webhook:
            self.webhooks_in_flight += 1
        else:
            self.in_flight += 1
            self.new_work_in_flight += new_work
            scope.setdefault("state", {})[PARK_STATE] = self._park
        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            if webhook:
                self.webhooks_in_flight -= 1
            else:
                self.in_flight -= 1
                self.new_work_in_flight -= new_work
            metrics.HTTP_IN_FLIGHT.dec()
            self.completed.add(time.monotonic())

    @asynccontextmanager
    async def _park(self) -> AsyncIterator[None]:
        """Not in flight for the block (a long-poll's wait)."""
        self.in_flight -= 1
        self.parked += 1
        metrics.HTTP_IN_FLIGHT.dec()
        metrics.HTTP_PARKED.inc()
        try:
            yield
        finally:
            self.parked -= 1
            self.in_flight += 1
            metrics.HTTP_IN_FLIGHT.inc()
            metrics.HTTP_PARKED.dec()


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            send,
            scope,
            413,
            code="payload_too_large",
            title="Request body too large",
            detail=f"Request bodies are limited to {self.max_bytes} bytes",
        )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class FastRequest:
    """What a fast path gets: the keyed request, its caller, its body and content type, and
    ``acquire`` to borrow a pooled connection that is in no transaction (one statement on it
    commits by itself; take it only once the request is known to qualify)."""

    keyed: idempotency.KeyedRequest
    principal: Principal
    body: bytes
    content_type: str | None
    acquire: Callable[[], AbstractAsyncContextManager[DriverConnection]]


FastPath = Callable[[FastRequest], Awaitable[idempotency.StoredResponse | str]]
"""Does the whole request in ONE statement that also claims the key and stores the response
(then returns that response), or returns why not (a short reason, a metric label) having written
nothing; the general path (claim, endpoint, complete, commit) then runs as if the fast path did
not exist. Only for requests whose every outcome other than plain success the general path
decides."""

_CONNECTION_ERRORS = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError)


class UnitOfWorkMiddleware:
    """One transaction per mutating ``/v1`` request, holding the Idempotency-Key claim.

    * 2xx/3xx: the response is stored with the key and committed together with the work; the
      client receives it only after the commit succeeded.
    * 4xx/5xx: the work is rolled back, so nothing of a failed request persists and a retry
      with the same key runs again (Stripe: "nothing is saved if validation fails"). A key that
      a checkpoint had already committed is unlocked. Business outcomes that must be replayed
      (a declined payment) are successful responses carrying a failed status.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
        settings: Settings,
        clock: Callable[[], Clock],
        exempt_prefixes: tuple[str, ...] = (),
        engine: Callable[[], AsyncEngine] | None = None,
        fast_paths: Mapping[tuple[str, str], FastPath] | None = None,
    ) -> None:
        self.app = app
        self.sessionmaker = sessionmaker
        self.engine = engine
        self.fast_paths = dict(fast_paths or {})
        self.settings = settings
        self.clock = clock
        self.exempt = exempt_prefixes
        self.lock_timeout = timedelta(seconds=settings.idempotency.lock_timeout_seconds)
        self._releases: set[asyncio.Task[bool]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING
            or not scope["path"].startswith("/v1/")
            or scope["path"].startswith(self.exempt)
        ):
            await self.app(scope, receive, send)
            return
        try:
            key = idempotency.validate_key(
                _header(scope, b"idempotency-key"), max_length=self.settings.idempotency.max_key_length
            )
        except AppError as exc:
            await _send_problem(send, scope, exc)
            return
        try:
            principal = decode_token(bearer_token(_header(scope, b"authorization")), self.settings.auth)
        except AppError as exc:
            await _send_problem(send, scope, exc)
            return
        try:
            body = await _read_body(receive)
        except ConnectionAbortedError:
            return

        fingerprint = idempotency.fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), body
        )
        fast = self.fast_paths.get((scope["method"], scope["path"]))
        if fast is not None and self.engine is not None:
            keyed = idempotency.KeyedRequest(principal.key, key, scope["method"], scope["path"], fingerprint)
            request = FastRequest(keyed, principal, body, _header(scope, b"content-type"), self._driver_connection)
            try:
                done = await fast(request)
            except AppError as exc:
                await _send_problem(send, scope, exc)
                return
            except sqlalchemy.exc.TimeoutError:  # no pooled connection became free: overload
                log.warning("database_pool_timeout", path=scope.get("path"))
                await _send_problem(send, scope, DatabaseBusy())
                return
            if not isinstance(done, str):
                metrics.FAST_PATH_REQUESTS.labels(path=scope["path"], outcome="done").inc()
                await self._send_stored(send, done, replayed=False)
                return
            metrics.FAST_PATH_REQUESTS.labels(path=scope["path"], outcome=done).inc()

        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        clock = self.clock()
        async with self.sessionmaker()() as session:
            try:
                claimed = await idempotency.claim(
                    session,
                    principal=principal.key,
                    key=key,
                    method=scope["method"],
                    path=scope["path"],
                    request_fingerprint=fingerprint,
                    now=clock.now(),
                    lock_timeout=self.lock_timeout,
                )
            except AppError as exc:
                await session.rollback()
                await _send_problem(send, scope, exc)
                return
            except sqlalchemy.exc.TimeoutError:  # no pooled connection became free: overload
                log.warning("database_pool_timeout", path=scope.get("path"))
                await _send_problem(send, scope, DatabaseBusy())
                return
            if isinstance(claimed, idempotency.StoredResponse):
                await session.rollback()
                metrics.IDEMPOTENT_REPLAYS.inc()
                await self._send_stored(send, claimed, replayed=True)
                return

            idempotency.fence_commits(session, claimed)
            state["uow_session"] = session
            state["idempotency_claim"] = claimed
            state["principal"] = principal
            try:
                status, headers, resp_body = await self._run(scope, body, state)
            except BaseException:
                await self._abandon(session, claimed)
                raise
            if status < 400:
                stored = idempotency.StoredResponse(
                    status=status,
                    headers={k: v for k, v in headers.items() if k in _STORED_HEADERS},
                    body=resp_body,
                )
                try:
                    await idempotency.complete(session, claimed, stored, now=clock.now())
                    await session.commit()
                except idempotency.IdempotencyKeyInUse as exc:  # a retry took the key over: it finishes
                    await session.rollback()
                    log.warning("idempotency_claim_taken_over", key=claimed.key)
                    await _send_problem(send, scope, exc)
                    return
                except Exception as exc:  # the work did not persist: tell the client so
                    await self._abandon(session, claimed)  # and let the advertised retry proceed
                    error_id = uuid.uuid4().hex
                    log.exception("commit_failed", error_id=error_id, exc_info=exc)
                    await _send_problem(
                        send,
                        scope,
                        503,
                        headers={"Retry-After": "1"},
                        code="commit_failed",
                        title="The request could not be committed",
                        detail="Nothing was changed; retry with the same Idempotency-Key",
                        error_id=error_id,
                    )
                    return
                await self._send_stored(send, stored, replayed=False, all_headers=headers)
                return
            await self._abandon(session, claimed)
            await self._send_stored(
                send, idempotency.StoredResponse(status=status, headers=headers, body=resp_body), replayed=False
            )

    @asynccontextmanager
    async def _driver_connection(self) -> AsyncIterator[DriverConnection]:
        """A pooled asyncpg connection outside any transaction; invalidated (not returned to the
        pool) when it broke underneath the caller."""
        assert self.engine is not None
        async with self.engine().connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                yield driver
            except _CONNECTION_ERRORS:
                await conn.invalidate()
                raise

    async def _abandon(self, session: AsyncSession, claimed: idempotency.Claim) -> None:
        """Roll the work back; unlock the key if a checkpoint had committed it.

        The unlock needs a pooled connection, which is what an overloaded process lacks (the
        request often failed for that very reason): when it fails it is retried in the background,
        otherwise the client's retries would get 409 until the lock times out (seen in the
        5000-client benchmark: 77 clients refused for minutes after one failed unlock each).
        """
        await session.rollback()
        try:
            await idempotency.release(session, claimed)
            await session.commit()
        except Exception as exc:
            await session.rollback()
            log.warning("idempotency_release_failed", key=claimed.key, error=repr(exc), retry="background")
            task = asyncio.get_running_loop().create_task(self.release_later(claimed))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def release_later(self, claimed: idempotency.Claim, *, first_delay: float = 0.5) -> bool:
        """Unlock ``claimed``'s key, retrying with back-off for up to the lock timeout. True when done."""
        delay, waited = first_delay, 0.0
        while waited < self.lock_timeout.total_seconds():
            await asyncio.sleep(delay)
            waited += delay
            try:
                async with self.sessionmaker()() as session:
                    await idempotency.release(session, claimed)
                    await session.commit()
            except Exception as exc:
                log.info("idempotency_release_retry_failed", key=claimed.key, error=repr(exc))
                delay = min(delay * 2, 10.0)
                continue
            log.info("idempotency_released_late", key=claimed.key, after_s=round(waited, 1))
            return True
        log.error("idempotency_release_gave_up", key=claimed.key)
        return False

    async def _run(
        self, scope: Scope, body: bytes, state: MutableMapping[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name != "content-length":
                        headers[name] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay_receive, capture)
        return status, headers, b"".join(chunks)

    @staticmethod
    async def _send_stored(
        send: Send,
        stored: idempotency.StoredResponse,
        *,
        replayed: bool,
        all_headers: dict[str, str] | None = None,
    ) -> None:
        hdrs = {**(all_headers or stored.headers)}
        hdrs["content-length"] = str(len(stored.body))
        if replayed:
            hdrs["idempotent-replayed"] = "true"
        await send(
            {
                "type": "http.response.start",
                "status": stored.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()],
            }
        )
        await send({"type": "http.response.body", "body": stored.body})


Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
