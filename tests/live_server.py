"""An app on a real uvicorn server on a loopback port, inside a test's event loop.

For what only a real server shows: WebSocket frames, and what the client's socket does (a
disconnect reaches the app as ``http.disconnect``; an in-process transport never sends one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave the test runner's signal handlers alone
        yield


@dataclass
class Live:
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        """The donation alerts' WebSocket."""
        return f"ws://127.0.0.1:{self.port}/v1/ws/donations"


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[Live]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="websockets-sansio")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Live(server.servers[0].sockets[0].getsockname()[1], server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
