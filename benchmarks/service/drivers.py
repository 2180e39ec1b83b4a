"""Load drivers: what one load process runs. Each job is bounded in count and in time.

* :class:`ClosedLoopJob` — N connections, each sends its next request when the previous one
  finished (throughput at saturation: ``http_overhead``, ``purchase``, ``posting``);
* :class:`OpenLoopJob` — arrivals at a fixed (or stepped) rate whatever the answers (donations of
  the hot-streamer scenario, purchases of the stress ramp); outstanding flows are bounded, an
  arrival beyond the bound is counted as ``dropped``;
* :class:`ConcurrentJob` — N clients, each with its own connection opened first; at a barrier
  shared by every load process they all create and complete one payment at once;
* :class:`WatchJob` (:mod:`.watchers`) — WebSocket alert clients.

Jobs are plain dataclasses (pickled to spawned processes); results are plain dicts. Cross-process
synchronisation (a barrier, a stop event, counters) comes from :mod:`.loadgen` through
:func:`sync`. No ``payment_service`` import; HTTP through :class:`.flows.Pool` (lean keep-alive
connections), the event loop is uvloop's.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from benchmarks.lean_http import Response
from benchmarks.service import flows
from benchmarks.service.flows import PollPolicy, Pool, PurchaseOptions, TransportError
from benchmarks.service.samples import DROPPED, ERROR, OK, SHED, SHED_NO_RETRY_AFTER, Sample

_SYNC: dict[str, Any] = {}
"""Synchronisation objects of the current load process (set by :func:`install_sync`)."""


def install_sync(objects: dict[str, Any]) -> None:
    _SYNC.clear()
    _SYNC.update(objects)


def sync(name: str) -> Any:
    return _SYNC[name]


async def wait_barrier(timeout: float) -> None:
    """Wait until every load process of the job reached this point (no-op without a barrier)."""
    barrier = _SYNC.get("barrier")
    if barrier is not None:
        await asyncio.to_thread(barrier.wait, timeout)


async def sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


# ---- closed loop ---------------------------------------------------------------------------------


@dataclass
class ClosedLoopJob:
    kind: str
    """``http_overhead`` (GET /v1/me), ``purchase`` (end to end) or ``posting`` (wallet donation)."""
    base: str
    tokens: list[str]
    connections: int
    seconds: float
    max_requests: int = 10**7
    streamers: list[str] = field(default_factory=list)
    poll: PollPolicy = field(default_factory=PollPolicy)
    seed: int = 0


async def closed_loop(job: ClosedLoopJob) -> dict[str, Any]:
    samples: list[Sample] = []
    purchases: list[dict[str, Any]] = []
    created: dict[str, int] = {}
    rng = random.Random(job.seed)
    await wait_barrier(60)
    deadline = time.time() + job.seconds

    async def one(http: Pool, i: int, n: int) -> None:
        # a donor per connection (its wallet row is locked by each of its donations); buyers rotate
        token = job.tokens[(i if job.kind == "posting" else i + n) % len(job.tokens)]
        if job.kind == "http_overhead":
            started = time.perf_counter()
            try:
                response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
                outcome = OK if response.status == 200 else _shed_or_error(response)
            except (TimeoutError, *TransportError):
                outcome = ERROR
            samples.append((time.time(), (time.perf_counter() - started) * 1000, outcome))
        elif job.kind == "purchase":
            opts = PurchaseOptions(token=token, deadline=deadline + 30, poll=job.poll, max_retries=0)
            rec = await flows.purchase(http, opts, amount=flows.purchase_amount(rng, 0.0), rng=rng)
            samples.append(flows.purchase_sample(rec))
            purchases.append(rec.as_dict())
        else:
            streamer = job.streamers[(i * 7919 + n) % len(job.streamers)]
            outcome, latency, body, _ = await flows.donate(http, token, streamer)
            samples.append((time.time(), latency, outcome))
            if body is not None:
                created[streamer] = created.get(streamer, 0) + _minor(body["streamer_amount"]["value"])

    async def loop(i: int) -> None:
        async with Pool(job.base) as http:  # one connection to the API (plus one per emulator)
            n = 0
            while time.time() < deadline and len(samples) < job.max_requests:
                n += 1
                await one(http, i, n)

    await asyncio.gather(*(loop(i) for i in range(job.connections)))
    return {"samples": samples, "purchases": purchases, "streamer_minor": created, "started": deadline - job.seconds}


def _shed_or_error(response: Response) -> str:
    if response.status == 503:
        return SHED if flows.retry_after(response) is not None else SHED_NO_RETRY_AFTER
    return ERROR


def _minor(value: str) -> int:
    rubles, _, kopecks = value.partition(".")
    return int(rubles) * 100 + int((kopecks + "00")[:2])


# ---- open loop -----------------------------------------------------------------------------------


@dataclass
class OpenLoopJob:
    kind: str
    """``donation`` (wallet donations) or ``purchase`` (end-to-end payments)."""
    base: str
    tokens: list[str]
    profile: list[tuple[float, float]]
    """Steps (second since start, arrivals per second of THIS process from then on)."""
    seconds: float
    start_at: float = 0.0
    """Wall time of the first arrival (the same for every load process); 0: right after the
    barrier that every load process of the job reaches."""
    max_outstanding: int = 2000
    streamers: list[str] = field(default_factory=list)
    """Donation targets: arrival i goes to ``streamers[i % len]``."""
    tag: str = ""
    max_retries: int = 3
    decline_share: float = 0.0
    poll: PollPolicy = field(default_factory=lambda: PollPolicy(0.05, 1.5, 1.0))
    grace: float = 60.0
    """How long outstanding flows may run after the last arrival."""
    seed: int = 0


def rate_at(profile: list[tuple[float, float]], t: float) -> float:
    rate = profile[0][1]
    for start, r in profile:
        if t >= start:
            rate = r
    return rate


async def open_loop(job: OpenLoopJob) -> dict[str, Any]:
    rng = random.Random(job.seed)
    samples: list[Sample] = []
    records: list[dict[str, Any]] = []
    lateness: list[float] = []
    outstanding: set[asyncio.Task[None]] = set()
    if job.start_at:
        await sleep_until(job.start_at)
        start_at = job.start_at
    else:
        await wait_barrier(120)
        start_at = time.time()
    origin = time.perf_counter()
    stop_at = start_at + job.seconds + job.grace
    async with Pool(job.base) as http:

        async def donation(i: int) -> None:
            streamer = job.streamers[i % len(job.streamers)]
            sent = time.time()
            outcome, latency, body, _ = await flows.donate(http, job.tokens[i % len(job.tokens)], streamer)
            done = time.time()
            samples.append((done, latency, outcome))
            records.append(
                {
                    "i": i,
                    "tag": job.tag,
                    "streamer": streamer,
                    "sent": sent,
                    "done": done,
                    "outcome": outcome,
                    "donation_id": body["id"] if body else None,
                    "streamer_minor": _minor(body["streamer_amount"]["value"]) if body else 0,
                }
            )

        async def purchase(i: int) -> None:
            opts = PurchaseOptions(
                token=job.tokens[i % len(job.tokens)], max_retries=job.max_retries, deadline=stop_at, poll=job.poll
            )
            rec = await flows.purchase(http, opts, amount=flows.purchase_amount(rng, job.decline_share), rng=rng)
            samples.append(flows.purchase_sample(rec))
            records.append(rec.as_dict())

        fire: Callable[[int], Coroutine[Any, Any, None]] = donation if job.kind == "donation" else purchase
        i = 0
        t = 0.0
        while t < job.seconds:
            now = time.perf_counter() - origin
            if t > now:
                await asyncio.sleep(t - now)
            lateness.append(max(0.0, (time.perf_counter() - origin - t) * 1000))
            if len(outstanding) >= job.max_outstanding:
                samples.append((time.time(), 0.0, DROPPED))
            else:
                task = asyncio.create_task(fire(i))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
            i += 1
            rate = rate_at(job.profile, t)
            t += 1.0 / rate if rate > 0 else job.seconds
        if outstanding:
            _, late = await asyncio.wait(outstanding, timeout=max(1.0, stop_at - time.time() + 5))
            for task in late:
                task.cancel()
    return {"samples": samples, "records": records, "arrivals": i, "lateness_ms": lateness, "started": start_at}


# ---- N concurrent clients --------------------------------------------------------------------------


@dataclass
class ConcurrentJob:
    base: str
    tokens: list[str]
    clients: int
    seconds: float
    """Each client's flow must end within this (then it is a timeout)."""
    decline_share: float = 0.0
    connect_concurrency: int = 200
    # long-polls (PollPolicy.wait); the back-off is for a client that polls (wait=0): 5000 clients
    # polling are themselves load, so up to 5 s, about what a storefront's status page does
    poll: PollPolicy = field(default_factory=lambda: PollPolicy(0.1, 1.6, 5.0))
    seed: int = 0


async def concurrent(job: ConcurrentJob) -> dict[str, Any]:
    """Every client opens its own connection (GET /health/live, never shed), then all start together."""
    rng = random.Random(job.seed)
    clients = [Pool(job.base, timeout=120.0) for _ in range(job.clients)]
    gate = asyncio.Semaphore(job.connect_concurrency)
    connect_errors = 0

    async def warm(http: Pool) -> None:
        nonlocal connect_errors
        async with gate:
            try:
                await http.get("/health/live")
            except (TimeoutError, *TransportError):
                connect_errors += 1

    try:
        await asyncio.gather(*(warm(c) for c in clients))
        await wait_barrier(300)
        started = time.time()
        deadline = started + job.seconds

        async def one(i: int) -> dict[str, Any]:
            opts = PurchaseOptions(token=job.tokens[i % len(job.tokens)], deadline=deadline, poll=job.poll)
            amount = flows.purchase_amount(rng, job.decline_share)
            return (await flows.purchase(clients[i], opts, amount=amount, rng=rng)).as_dict()

        records = await asyncio.gather(*(one(i) for i in range(job.clients)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    return {"records": records, "started": started, "connect_errors": connect_errors}


def run(job: object) -> dict[str, Any]:
    """Entry point of a load process: run one job in a fresh (uvloop) event loop."""
    import uvloop

    from benchmarks.service import watchers

    if isinstance(job, ClosedLoopJob):
        result = uvloop.run(closed_loop(job))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # of this load process (spawned for the job)
        return result
    if isinstance(job, OpenLoopJob):
        return uvloop.run(open_loop(job))
    if isinstance(job, ConcurrentJob):
        return uvloop.run(concurrent(job))
    if isinstance(job, watchers.WatchJob):
        return uvloop.run(watchers.watch(job))
    raise TypeError(f"unknown job {job!r}")
