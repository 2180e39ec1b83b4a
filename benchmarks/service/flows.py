"""What one simulated client does: a purchase end to end, a wallet donation, a bare request.

Imported by the load processes: no ``payment_service``, so that a load process starts quickly
and never shares the server's code. HTTP goes through :class:`Pool`, keep-alive connections of
:mod:`benchmarks.lean_http` (a few tens of µs of client CPU per request instead of httpx's
1–2 ms: on a 2-core machine the load generator's CPU is taken from the server it measures).

A purchase (``purchase``):

1. ``POST /v1/payments`` with an ``Idempotency-Key``; a 503 is retried with the SAME key and body
   after its ``Retry-After`` (plus up to 25 % jitter); a transport error or timeout, and a 409
   ``idempotency_key_in_use`` (the first try is still running), are retried the same way;
2. the customer acts on whichever emulator the payment's action URL points to (YooKassa
   ``/checkout/{id}``, T-Bank ``/new/{id}``, Sber ``...payment_ru.html?mdOrder={id}``):
   ``POST /_emulator/payments/{id}/pay`` on that emulator;
3. ``GET /v1/payments/{id}`` until the payment is final (succeeded, failed, canceled, expired),
   backing off from ``poll.initial`` by ``poll.factor`` up to ``poll.cap`` seconds, honouring a
   503's Retry-After. The end-to-end latency is measured to the GET that saw the final status, so it
   overstates the true figure by at most one poll interval.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httptools

from benchmarks.lean_http import ConnectionClosed, LeanClient, Response
from benchmarks.service.samples import DECLINED, ERROR, GAVE_UP, OK, SHED, SHED_NO_RETRY_AFTER, TIMEOUT

FINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
DECLINE_KOPECKS = 11
"""Emulator magic value: an amount ending in .11 is declined (insufficient funds) when paid."""

TransportError = (OSError, ConnectionClosed, httptools.HttpParserError)
"""What a request may raise besides TimeoutError (connection refused/reset, closed, garbled)."""


@dataclass(frozen=True)
class PollPolicy:
    """How a client waits for a payment's final status. With ``wait`` > 0 it long-polls
    (``GET /v1/payments/{id}?wait=``: the answer comes when the status changes) and asks again at
    once; with ``wait`` = 0 it polls, sleeping ``initial`` seconds growing by ``factor`` up to ``cap``."""

    initial: float = 0.02
    factor: float = 1.4
    cap: float = 0.25
    wait: float = 10.0


class Pool:
    """Keep-alive connections per origin (``host:port``), loopback only. A request takes an idle
    connection of its origin or opens one; relative paths go to ``base``. A request on a reused
    connection that the server closed meanwhile (keep-alive expiry) is sent again once, on a new
    connection (safe: the server never read it)."""

    def __init__(self, base: str, *, timeout: float = 30.0) -> None:
        url = urlsplit(base)
        self.origin = (url.hostname or "127.0.0.1", url.port or 80)
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[LeanClient]] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: object | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        origin, path = self.origin, url
        if not url.startswith("/"):
            parts = urlsplit(url)
            origin = (parts.hostname or "127.0.0.1", parts.port or 80)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        if origin[0] not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the load generator talks to loopback only, not {origin[0]}")
        idle = self._idle.setdefault(origin, [])
        client = idle.pop() if idle else LeanClient(*origin)
        reused = client._proto is not None
        try:
            try:
                response = await client.request(
                    method, path, json=json, headers=headers, timeout=timeout or self.timeout
                )
            except ConnectionClosed:
                if not reused:
                    raise
                response = await client.request(
                    method, path, json=json, headers=headers, timeout=timeout or self.timeout
                )
        except BaseException:
            await client.close()
            raise
        idle.append(client)
        return response

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        for clients in self._idle.values():
            for client in clients:
                await client.close()
        self._idle.clear()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def body_of(response: Response) -> dict[str, Any]:
    data = response.json()
    return cast(dict[str, Any], data) if isinstance(data, dict) else {}


def retry_after(response: Response) -> float | None:
    """The 503's Retry-After in seconds (delta-seconds form), or None when absent or unreadable."""
    raw = response.header("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def problem_code(response: Response) -> str:
    try:
        return str(body_of(response).get("code", ""))
    except ValueError:
        return ""


def emulator_pay_url(action_url: str) -> str:
    """``/_emulator/payments/{id}/pay`` on the emulator that serves ``action_url``."""
    url = urlsplit(action_url)
    provider_id = (parse_qs(url.query).get("mdOrder") or [""])[0] or url.path.rstrip("/").rsplit("/", 1)[-1]
    return f"{url.scheme}://{url.hostname}:{url.port}/_emulator/payments/{provider_id}/pay"


def purchase_amount(rng: random.Random, decline_share: float) -> str:
    """A card amount: succeeds, or (with ``decline_share``) is declined by the emulator when paid."""
    rubles = rng.randrange(100, 1000)
    kopecks = DECLINE_KOPECKS if rng.random() < decline_share else 0
    return f"{rubles}.{kopecks:02d}"


@dataclass
class PurchaseRecord:
    """One purchase as the client saw it (wall times from ``time.time()``)."""

    key: str
    amount: str
    t_start: float
    expect_decline: bool = False
    payment_id: str | None = None
    provider: str | None = None
    status: str | None = None
    outcome: str = ERROR
    t_created: float | None = None
    t_done: float | None = None
    create_ms: float | None = None
    """First try sent → 201 received, including every 503 wait and retry."""
    accepted_ms: float | None = None
    """The try that got the 201, alone."""
    e2e_ms: float | None = None
    """First try sent → the GET that saw the final status."""
    sheds: int = 0
    sheds_without_retry_after: int = 0
    retries: int = 0
    poll_sheds: int = 0
    polls: int = 0
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PurchaseOptions:
    token: str
    provider: str = "yookassa"
    max_retries: int = 1000
    """503/transport retries of the create call before the flow gives up."""
    deadline: float = 0.0
    """Wall time after which the flow stops (0: none); a flow cut short is a timeout."""
    poll: PollPolicy = field(default_factory=PollPolicy)
    jitter: float = 0.25


async def _wait(seconds: float, deadline: float) -> bool:
    """Sleep, unless that passes the deadline; False when the deadline is (or would be) passed."""
    if deadline and time.time() + seconds >= deadline:
        return False
    await asyncio.sleep(seconds)
    return True


async def purchase(
    http: Pool, opts: PurchaseOptions, *, amount: str, key: str | None = None, rng: random.Random
) -> PurchaseRecord:
    """Create, pay and wait for one payment; never raises (the record says what happened)."""
    rec = PurchaseRecord(
        key=key or uuid.uuid4().hex,
        amount=amount,
        t_start=time.time(),
        expect_decline=amount.endswith(f".{DECLINE_KOPECKS}"),
    )
    started = time.perf_counter()
    body = {
        "amount": {"value": amount, "currency": "RUB"},
        "method": "bank_card",
        "description": "Benchmark purchase",
        "return_url": "https://store.example/return",
        "provider": opts.provider,
    }
    headers = {"Authorization": f"Bearer {opts.token}", "Idempotency-Key": rec.key}
    try:
        payment = await _create(http, opts, rec, body, headers, started, rng)
        if payment is None:
            return rec
        await _complete(http, opts, rec, payment, started)
    except Exception as exc:  # a bug in the flow must not kill the load process
        rec.outcome, rec.error = ERROR, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        rec.t_done = time.time()
    return rec


async def _create(
    http: Pool,
    opts: PurchaseOptions,
    rec: PurchaseRecord,
    body: dict[str, Any],
    headers: dict[str, str],
    started: float,
    rng: random.Random,
) -> dict[str, Any] | None:
    while True:
        rec.attempts += 1
        sent = time.perf_counter()
        wait: float | None
        try:
            response = await http.post("/v1/payments", json=body, headers=headers)
        except TimeoutError:
            rec.error, wait = "create timed out", 1.0
        except TransportError as exc:
            rec.error, wait = f"create: {type(exc).__name__}", 0.5
        else:
            if response.status == 201:
                rec.accepted_ms = (time.perf_counter() - sent) * 1000
                rec.create_ms = (time.perf_counter() - started) * 1000
                rec.t_created = time.time()
                rec.error = None
                return body_of(response)
            if response.status == 503:
                rec.sheds += 1
                wait = retry_after(response)
                if wait is None:
                    rec.sheds_without_retry_after += 1
                    wait = 1.0
            elif response.status == 409 and problem_code(response) == "idempotency_key_in_use":
                wait = 0.5
            else:
                rec.outcome = ERROR
                rec.error = f"create: HTTP {response.status} {problem_code(response)}"
                return None
        if rec.retries >= opts.max_retries:
            rec.outcome = GAVE_UP if rec.sheds else ERROR
            return None
        rec.retries += 1
        if not await _wait(wait * (1 + rng.random() * opts.jitter), opts.deadline):
            rec.outcome = TIMEOUT
            return None


async def _complete(
    http: Pool, opts: PurchaseOptions, rec: PurchaseRecord, payment: dict[str, Any], started: float
) -> None:
    auth = {"Authorization": f"Bearer {opts.token}"}
    rec.payment_id = str(payment["id"])
    rec.provider = payment.get("provider")
    status = str(payment["status"])
    paid = False
    interval = opts.poll.initial
    while True:
        if status in FINAL:
            rec.status = status
            rec.e2e_ms = (time.perf_counter() - started) * 1000
            if status == "succeeded":
                rec.outcome = ERROR if rec.expect_decline else OK
            else:
                rec.outcome = DECLINED if rec.expect_decline and status == "failed" else ERROR
                if rec.outcome == ERROR:
                    rec.error = f"final status {status}: {payment.get('decline_code')}"
            return
        action = payment.get("action") or {}
        if not paid and status == "requires_action" and action.get("url"):
            try:
                pay = await http.post(emulator_pay_url(str(action["url"])), json={})
            except (TimeoutError, *TransportError) as exc:
                rec.outcome, rec.error = ERROR, f"emulator pay: {type(exc).__name__}"
                return
            if pay.status != 200:
                rec.outcome, rec.error = ERROR, f"emulator pay: HTTP {pay.status}"
                return
            paid = True
        if opts.poll.wait > 0:
            if opts.deadline and time.time() >= opts.deadline:
                rec.outcome, rec.status = TIMEOUT, status
                return
            path = f"/v1/payments/{rec.payment_id}?wait={opts.poll.wait:g}"
        else:
            if not await _wait(interval, opts.deadline):
                rec.outcome, rec.status = TIMEOUT, status
                return
            interval = min(opts.poll.cap, interval * opts.poll.factor)
            path = f"/v1/payments/{rec.payment_id}"
        rec.polls += 1
        try:
            got = await http.get(path, headers=auth)
        except (TimeoutError, *TransportError):
            got = None
        if got is not None and got.status in (429, 503):
            rec.poll_sheds += 1
            if retry_after(got) is None:
                rec.sheds_without_retry_after += 1
            if not await _wait(retry_after(got) or 1.0, opts.deadline):
                rec.outcome, rec.status = TIMEOUT, status
                return
            continue
        if got is None or got.status != 200:
            if opts.poll.wait > 0:  # a long-poll that failed: back off as a polling client would
                if not await _wait(interval, opts.deadline):
                    rec.outcome, rec.status = TIMEOUT, status
                    return
                interval = min(opts.poll.cap, interval * opts.poll.factor)
            continue
        payment = body_of(got)
        rec.provider = payment.get("provider") or rec.provider
        status = str(payment["status"])


def purchase_sample(rec: PurchaseRecord) -> tuple[float, float, str]:
    """The flow as one sample: finished at, end-to-end latency, outcome (shed flows count once)."""
    latency = rec.e2e_ms if rec.e2e_ms is not None else ((rec.t_done or rec.t_start) - rec.t_start) * 1000
    return (rec.t_done or rec.t_start, latency, rec.outcome)


async def donate(
    http: Pool, token: str, streamer: str, *, amount: str = "10.00"
) -> tuple[str, float, dict[str, Any] | None, bool]:
    """One wallet donation: (outcome, latency ms, the 201 body or None, 503 carried Retry-After)."""
    payload = {"streamer_id": streamer, "amount": {"value": amount, "currency": "RUB"}, "method": "wallet"}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    started = time.perf_counter()
    try:
        response = await http.post("/v1/donations", json=payload, headers=headers)
    except TimeoutError:
        return TIMEOUT, (time.perf_counter() - started) * 1000, None, True
    except TransportError:
        return ERROR, (time.perf_counter() - started) * 1000, None, True
    latency = (time.perf_counter() - started) * 1000
    if response.status == 201:
        return OK, latency, body_of(response), True
    if response.status == 503:
        has = retry_after(response) is not None
        return (SHED if has else SHED_NO_RETRY_AFTER), latency, None, has
    return ERROR, latency, None, True
