"""Readiness checks of every dependency the API needs, run concurrently with a timeout each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from payment_service.db import asyncpg_dsn
from payment_service.resources import Resources


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


async def _postgres(resources: Resources) -> None:
    """SELECT 1 on the check's own connection, not one from the pool: when requests hold every
    pooled connection the database is busy, not down, and readiness must not say otherwise
    (a load balancer would take a busy but healthy instance out and overload the rest)."""
    conn = resources.health_connection
    if conn is None or conn.is_closed():
        conn = await asyncpg.connect(
            asyncpg_dsn(resources.settings.db.url.get_secret_value()),
            server_settings={"application_name": "payment-service-health"},
        )
        current = resources.health_connection
        if current is not None and not current.is_closed():  # a concurrent check connected first
            await conn.close()
            conn = current
        resources.health_connection = conn
    try:
        await conn.fetchval("SELECT 1")
    except BaseException:
        resources.health_connection = None  # a broken or interrupted connection is replaced next time
        conn.terminate()
        raise


async def _redis(resources: Resources) -> None:
    await resources.redis.ping()


async def _broker(resources: Resources) -> None:
    host, _, port = resources.settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")
    reader, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
    try:
        # ApiVersions v0 request: proves a Kafka-protocol broker answers, not just an open port.
        client_id = b"payment-service-health"
        body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
        body += len(client_id).to_bytes(2, "big") + client_id
        writer.write(len(body).to_bytes(4, "big") + body)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(4), "big")
        payload = await reader.readexactly(size)
        if int.from_bytes(payload[:4], "big") != 1 or int.from_bytes(payload[4:6], "big") != 0:
            raise RuntimeError("broker answered ApiVersions with an error")
    finally:
        writer.close()


async def _vault(resources: Resources) -> None:
    response = await resources.http.get(
        f"{resources.settings.vault.addr.rstrip('/')}/v1/sys/health", timeout=resources.settings.vault.timeout_seconds
    )
    if response.status_code != 200:
        raise RuntimeError(f"vault health is {response.status_code} (sealed, standby or uninitialised)")


CHECKS: dict[str, Callable[[Resources], Awaitable[None]]] = {
    "postgres": _postgres,
    "redis": _redis,
    "broker": _broker,
    "vault": _vault,
}


async def _run(
    name: str, check: Callable[[Resources], Awaitable[None]], resources: Resources, timeout: float
) -> CheckResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(resources), timeout)
    except Exception as exc:  # every failure is reported, none raised
        message = str(exc) or type(exc).__name__
        return CheckResult(name, False, (time.perf_counter() - started) * 1000, message[:300])
    return CheckResult(name, True, (time.perf_counter() - started) * 1000)


async def readiness(resources: Resources, *, timeout: float = 1.5) -> list[CheckResult]:
    """Check every dependency; never raises."""
    return list(await asyncio.gather(*(_run(n, c, resources, timeout) for n, c in CHECKS.items())))
