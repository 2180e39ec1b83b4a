"""Outgoing webhook dispatcher: retries like the providers do (schedule scaled down), plus fault modes.

Modes per payment: ``webhook_duplicate`` (every event delivered twice), ``webhook_never`` (recorded,
never sent), ``webhook_out_of_order`` (an event is held back and delivered after the next event of
the same payment, or on flush). Deliveries go from the emulator's own address (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Delivery:
    key: str
    url: str
    method: str
    event: str
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    suppressed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "url": self.url,
            "method": self.method,
            "event": self.event,
            "body": self.body.decode(errors="replace"),
            "params": self.params,
            "headers": self.headers,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "suppressed": self.suppressed,
        }


Acceptor = Callable[[httpx.Response], bool]


def ack_http_200(response: httpx.Response) -> bool:
    return response.status_code == 200


PARALLEL_DELIVERIES = 64
"""Webhook deliveries in flight at once (the rest wait their turn on a semaphore)."""
MAX_DELIVERIES = 20_000
"""Deliveries kept for inspection; the older half is dropped beyond it."""


class WebhookDispatcher:
    def __init__(
        self,
        *,
        retry_delays: list[float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.retry_delays = retry_delays if retry_delays is not None else [0.05, 0.1, 0.2, 0.4, 0.8]
        self.transport = transport
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[str, Delivery] = {}
        self._acceptors: dict[int, Acceptor] = {}
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def reset(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        self._held.clear()
        self.deliveries.clear()

    def send(
        self,
        *,
        key: str,
        url: str | None,
        event: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        method: str = "POST",
        params: dict[str, str] | None = None,
        mode: str | None = None,
        accept: Acceptor = ack_http_200,
    ) -> Delivery | None:
        if not url:
            return None
        d = Delivery(key=key, url=url, method=method, event=event, body=body, headers=headers or {}, params=params)
        if len(self.deliveries) > MAX_DELIVERIES:  # long load runs: keep memory bounded
            for old in self.deliveries[: MAX_DELIVERIES // 2]:
                self._acceptors.pop(id(old), None)
            del self.deliveries[: MAX_DELIVERIES // 2]
        self.deliveries.append(d)
        self._acceptors[id(d)] = accept
        if mode == "webhook_never":
            d.suppressed = True
            return d
        if mode == "webhook_out_of_order":
            held = self._held.pop(key, None)
            if held is None:
                self._held[key] = d
                return d
            self._spawn(d)
            self._spawn(held, delay=0.02)
            return d
        self._spawn(d)
        if mode == "webhook_duplicate":
            dup = Delivery(key=key, url=url, method=method, event=event, body=body, headers=d.headers, params=params)
            self.deliveries.append(dup)
            self._acceptors[id(dup)] = accept
            self._spawn(dup, delay=0.01)
        return d

    def _spawn(self, d: Delivery, delay: float = 0.0) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(d, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, d: Delivery, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        accept = self._acceptors.get(id(d), ack_http_200)
        delays = [0.0, *self.retry_delays]
        client = self._http()
        for n, wait in enumerate(delays, start=1):
            if wait:
                await asyncio.sleep(wait)
            record: dict[str, Any] = {"attempt": n, "at": time.time()}
            try:
                async with self._slots_for_loop():
                    r = await client.request(
                        d.method, d.url, content=d.body or None, headers=d.headers, params=d.params
                    )
                record["status"] = r.status_code
                ok = accept(r)
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
                ok = False
            d.attempts.append(record)
            if ok:
                d.delivered = True
                return

    def _http(self) -> httpx.AsyncClient:
        """One keep-alive client for all deliveries (a client per delivery cost a TLS context and a
        TCP handshake each: the emulator's largest CPU item under load)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            # (in-process tests run each test on its own event loop: a pool is bound to one loop)
            limits = httpx.Limits(max_connections=PARALLEL_DELIVERIES, max_keepalive_connections=PARALLEL_DELIVERIES)
            self._client = httpx.AsyncClient(transport=self.transport, timeout=self.timeout, limits=limits)
            self._client_loop = loop
            self._slots = asyncio.Semaphore(PARALLEL_DELIVERIES)
        return self._client

    def _slots_for_loop(self) -> asyncio.Semaphore:
        """Deliveries wait here, not in httpcore's pool, whose queue handling is quadratic (thousands
        of queued deliveries under a 5000-client benchmark cost the emulator a whole core)."""
        self._http()
        assert self._slots is not None
        return self._slots

    async def flush(self, timeout: float = 10.0) -> None:
        """Release held (out-of-order) events and wait until every delivery finished or gave up."""
        for d in list(self._held.values()):
            self._spawn(d)
        self._held.clear()
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
