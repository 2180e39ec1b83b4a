"""The uvicorn server the service runs (``server.build_server``)."""

from __future__ import annotations

from fastapi import FastAPI

from payment_service.config import Settings
from payment_service.server import build_server


def test_idle_connections_outlive_the_longest_retry_after(settings: Settings) -> None:
    """A client refused with Retry-After comes back on its open connection instead of reconnecting
    (thousands of reconnects at once under overload fill the accept queue and SYNs get dropped)."""
    server = build_server(settings, FastAPI())

    assert server.config.timeout_keep_alive == settings.http.keep_alive_seconds
    assert settings.http.keep_alive_seconds > settings.http.max_retry_after_seconds
