"""Serve an emulator app on a real loopback port: in a thread (tests) or as the main process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn in a daemon thread; yields its base URL, stops it on exit."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("emulator server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run(app: Any, *, host: str, port: int) -> None:
    # No access log: under load a line per request costs the emulator more than the request.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
