"""Emulators run as real processes (the launcher starts them this way)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from emulators._common.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_emulators_serves_the_provider_api() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "emulators", "--provider", "mobile", "--port", str(port)),
            *("--credentials", '{"api_key": "test_api_key", "webhook_secret": "s"}'),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/charges/x", headers={"Authorization": "Bearer test_api_key"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
