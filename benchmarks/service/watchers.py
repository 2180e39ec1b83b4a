"""WebSocket alert clients (``/v1/ws/donations``), run in load processes.

Each connection authenticates with its streamer's user JWT (``Authorization: Bearer``), waits for
``hello``, and stamps every ``alert`` frame with the wall time it was read. A dropped connection
reconnects with ``Last-Event-ID`` = the last alert id it read, as an overlay would (the server then
replays what was missed). Connections stay open until the parent sets the ``stop`` event (or
``max_seconds`` pass); the parent counts received frames through the shared ``progress`` counter
so that it can stop as soon as every expected alert arrived.

Per connection the result holds the alert ids read and their receipt times (two flat arrays:
a hot streamer watched by 1000 connections produces many frames) and, per streamer, the
alert id → donation id map of the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from benchmarks.service.drivers import sync


@dataclass
class WatchJob:
    ws_base: str
    """``ws://127.0.0.1:<port>``."""
    conns: list[tuple[str, str]]
    """(streamer id, token) per connection."""
    max_seconds: float
    connect_concurrency: int = 50


class _Conn:
    def __init__(self, streamer: str, token: str) -> None:
        self.streamer = streamer
        self.token = token
        self.hello_last: int | None = None
        self.last = 0
        self.seqs = array("q")
        self.times = array("d")
        self.reconnects = 0
        self.errors: list[str] = []


async def watch(job: WatchJob) -> dict[str, Any]:
    ready = sync("ready")
    stop = sync("stop")
    progress = sync("progress")
    donation_of: dict[str, dict[int, str]] = {}
    conns = [_Conn(s, t) for s, t in job.conns]
    gate = asyncio.Semaphore(job.connect_concurrency)
    deadline = time.time() + job.max_seconds
    url = f"{job.ws_base}/v1/ws/donations"

    async def open_ws(c: _Conn) -> ClientConnection:
        headers = {"Authorization": f"Bearer {c.token}"}
        if c.hello_last is not None:
            headers["Last-Event-ID"] = str(c.last)
        async with gate:
            ws = await connect(
                url, additional_headers=headers, open_timeout=60, ping_interval=None, compression=None, proxy=None
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if hello.get("type") != "hello":
            raise RuntimeError(f"expected hello, got {hello!r}")
        if c.hello_last is None:
            c.hello_last = c.last = int(hello["last_event_id"])
        return ws

    async def run(c: _Conn) -> None:
        first = True
        while time.time() < deadline and not stop.is_set():
            try:
                ws = await open_ws(c)
            except (OSError, TimeoutError, InvalidStatus, WebSocketException, RuntimeError) as exc:
                c.errors.append(f"connect: {type(exc).__name__}: {exc}"[:200])
                if first:
                    with ready.get_lock():
                        ready.value += 1  # counted as settled, with the error reported
                    first = False
                await asyncio.sleep(1.0)
                continue
            if first:
                with ready.get_lock():
                    ready.value += 1
                first = False
            else:
                c.reconnects += 1
            try:
                await _read(ws, c, donation_of, progress)
            except ConnectionClosed as exc:
                if not stop.is_set():
                    c.errors.append(f"closed: {exc}"[:200])
            finally:
                with contextlib.suppress(Exception):
                    await ws.close()
            if stop.is_set():
                return

    async def stopper(tasks: list[asyncio.Task[None]]) -> None:
        while not stop.is_set() and time.time() < deadline:
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()

    tasks = [asyncio.create_task(run(c)) for c in conns]
    await asyncio.gather(stopper(tasks), *tasks, return_exceptions=True)
    return {
        "conns": [
            {
                "streamer": c.streamer,
                "hello_last": c.hello_last,
                "seqs": c.seqs,
                "times": c.times,
                "reconnects": c.reconnects,
                "errors": c.errors[:5],
            }
            for c in conns
        ],
        "donation_of": donation_of,
    }


async def _read(ws: ClientConnection, c: _Conn, donation_of: dict[str, dict[int, str]], progress: Any) -> None:
    async for raw in ws:
        received = time.time()
        frame = json.loads(raw)
        if frame.get("type") != "alert":
            continue
        seq = int(frame["id"])
        c.seqs.append(seq)
        c.times.append(received)
        c.last = max(c.last, seq)
        donation_of.setdefault(c.streamer, {})[seq] = str(frame["donation_id"])
        with progress.get_lock():
            progress.value += 1
