"""Run the API under uvicorn (uvloop + httptools) with a graceful shutdown.

On the first SIGTERM or SIGINT:

1. ``app.state.shutting_down = True``: ``/health/ready`` answers 503 so the load balancer (or
   Kubernetes endpoints controller) stops sending new traffic, while the listener still accepts
   whatever arrives meanwhile; long-polls waiting for a change answer at once (their clients ask
   again, by then of another instance);
2. after ``settings.http.drain_delay_seconds`` (None: 5 s in production, 0 elsewhere) uvicorn
   stops accepting, closes idle keep-alive connections and lets in-flight requests finish within
   ``settings.http.shutdown_grace_seconds`` (``timeout_graceful_shutdown``), cancelling the rest;
3. the lifespan shutdown closes the pools.

A second signal during the drain delay skips the rest of it; a further SIGINT forces the exit
(uvicorn's own behaviour).
"""

from __future__ import annotations

import math
import socket
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from payment_service.config import Settings

PRODUCTION_DRAIN_DELAY_SECONDS = 5.0


def drain_delay(settings: Settings) -> float:
    """The configured drain delay, or its environment default."""
    configured = settings.http.drain_delay_seconds
    if configured is not None:
        return max(0.0, configured)
    return PRODUCTION_DRAIN_DELAY_SECONDS if settings.is_production else 0.0


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` that marks the app as shutting down and waits before it stops accepting."""

    def __init__(self, config: uvicorn.Config, *, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.drain_deadline: float | None = None
        self.exit_signal: int | None = None
        self.waiters_released = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called from the signal handler: only set flags here; on_tick (every 0.1 s) acts on them.
        if self.should_exit:
            super().handle_exit(sig, frame)  # uvicorn's own: another SIGINT forces the exit
        elif self.drain_deadline is None:
            self.app.state.shutting_down = True
            self.exit_signal = sig
            self.drain_deadline = time.monotonic() + self.drain_seconds
        else:
            self.drain_deadline = time.monotonic()  # a second signal skips the rest of the drain

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and not self.waiters_released:
            self.waiters_released = True
            listener = getattr(getattr(self.app.state, "resources", None), "listener", None)
            if listener is not None:
                listener.stop_waiting()
        if (
            self.drain_deadline is not None
            and self.exit_signal is not None
            and not self.should_exit
            and time.monotonic() >= self.drain_deadline
        ):
            super().handle_exit(self.exit_signal, None)  # from here on, uvicorn's normal shutdown
        return await super().on_tick(counter)


def build_server(
    settings: Settings, app: FastAPI, *, host: str | None = None, port: int | None = None
) -> GracefulServer:
    config = uvicorn.Config(
        app,
        host=host or settings.http.host,
        port=settings.http.port if port is None else port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(max(0.0, settings.http.shutdown_grace_seconds)),
        timeout_keep_alive=settings.http.keep_alive_seconds,
        log_config=None,  # logging is configured by payment_service.logging
        access_log=not settings.is_production,
        server_header=False,
        proxy_headers=True,
    )
    return GracefulServer(config, app=app, drain_seconds=drain_delay(settings))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT: every API process binds its own, the kernel spreads
    new connections over them (no shared accept queue, no thundering herd)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def serve(settings: Settings, app: FastAPI | None = None, *, host: str | None = None, port: int | None = None) -> None:
    """Serve ``app`` (default: :func:`payment_service.main.app_factory`) until SIGTERM/SIGINT."""
    if app is None:
        from payment_service.main import app_factory

        app = app_factory()
    server = build_server(settings, app, host=host, port=port)
    if settings.http.reuse_port:
        server.run(sockets=[reuse_port_socket(server.config.host, server.config.port)])
    else:
        server.run()
