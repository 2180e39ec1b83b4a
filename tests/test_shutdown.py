"""Graceful shutdown of ``serve`` (payment_service.server) in a real uvicorn process.

The server under test is the product app plus one test-only route, ``/test/slow``, added here
(``slow_app``) and run in a child process through :func:`payment_service.server.serve`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from payment_service.config import Environment, Settings
from payment_service.devstack import free_port
from payment_service.server import drain_delay

ROOT = Path(__file__).resolve().parent.parent


def slow_app() -> FastAPI:
    from payment_service.main import app_factory

    app = app_factory()

    @app.get("/test/slow")
    async def slow(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return app


def main() -> None:  # runs in the child process
    from payment_service.config import get_settings
    from payment_service.server import serve

    serve(get_settings(), slow_app())


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
    env.update(
        {
            "PAYMENT_ENV": "test",
            "PAYMENT_LOG_JSON": "false",
            "PAYMENT_DB__URL": settings.db.url.get_secret_value(),
            "PAYMENT_REDIS__URL": settings.redis.url.get_secret_value(),
            "PAYMENT_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "PAYMENT_VAULT__ADDR": settings.vault.addr,
            "PAYMENT_VAULT__TOKEN": settings.vault.token.get_secret_value() if settings.vault.token else "",
            "PAYMENT_AUTH__HS256_SECRET": settings.auth.hs256_secret.get_secret_value()
            if settings.auth.hs256_secret
            else "",
            **extra,
        }
    )
    return env


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            if httpx.get(f"{base}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not become ready")


@pytest.fixture
def server(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    drain = str(getattr(request, "param", 1.5))
    env = child_env(
        settings,
        PAYMENT_HTTP__PORT=str(port),
        PAYMENT_HTTP__DRAIN_DELAY_SECONDS=drain,
        PAYMENT_HTTP__SHUTDOWN_GRACE_SECONDS="10",
    )
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tests.test_shutdown import main; main()"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()


class TestDrainDelay:
    def test_defaults_to_five_seconds_in_production_and_zero_elsewhere(self) -> None:
        dev = Settings(_env_file=None)
        prod = Settings(_env_file=None, env=Environment.production)

        assert drain_delay(dev) == 0.0
        assert drain_delay(prod) == 5.0

    def test_configured_value_wins(self) -> None:
        prod = Settings(_env_file=None, env=Environment.production)
        prod.http.drain_delay_seconds = 0.5

        assert drain_delay(prod) == 0.5


class TestServeUnderSigterm:
    def test_readiness_fails_during_the_drain_and_in_flight_requests_complete(
        self, server: tuple[str, subprocess.Popen[bytes]]
    ) -> None:
        base, proc = server
        with ThreadPoolExecutor(1) as pool:
            slow: Future[httpx.Response] = pool.submit(httpx.get, f"{base}/test/slow?seconds=3", timeout=15.0)
            time.sleep(0.5)  # the slow request is in flight

            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            ready = httpx.get(f"{base}/health/ready", timeout=2.0)
            live = httpx.get(f"{base}/health/live", timeout=2.0)
            response = slow.result(timeout=15)

        assert ready.status_code == 503
        assert ready.json()["status"] == "shutting_down"
        assert live.status_code == 200
        assert response.status_code == 200
        assert response.json() == {"slept": 3.0}
        proc.wait(timeout=15)
        assert proc.returncode in (0, -signal.SIGTERM)
        assert time.monotonic() - t0 >= 1.5  # it waited for the drain and the slow request
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health/live", timeout=1.0)

    @pytest.mark.parametrize("server", [60], indirect=True)
    def test_a_second_signal_skips_the_rest_of_the_drain(self, server: tuple[str, subprocess.Popen[bytes]]) -> None:
        base, proc = server
        proc.send_signal(signal.SIGTERM)
        assert httpx.get(f"{base}/health/ready", timeout=2.0).status_code == 503

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

        assert time.monotonic() - t0 < 5


def test_reuse_port_sockets_let_several_api_processes_share_one_port() -> None:
    from payment_service.devstack import free_port
    from payment_service.server import reuse_port_socket

    port = free_port()
    first = reuse_port_socket("127.0.0.1", port)
    try:
        second = reuse_port_socket("127.0.0.1", port)  # a plain socket would fail: address in use
        try:
            assert first.getsockname()[1] == second.getsockname()[1] == port
        finally:
            second.close()
    finally:
        first.close()
