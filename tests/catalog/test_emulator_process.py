"""The catalog emulator runs as a real process (``make run`` starts it this way) and the client talks to it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
from emulators._common.server import free_port

from payment_service.catalog.client import HttpCatalogClient
from payment_service.catalog.ports import CatalogUnavailableError
from payment_service.kit.money import Money
from tests.catalog.conftest import catalog_settings

ROOT = Path(__file__).resolve().parents[2]


async def test_python_m_emulators_catalog_serves_prices_and_honours_the_token() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.catalog", "--port", str(port), "--token", "catalog-token"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    await http.get(f"{base}/_emulator/requests")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            good = HttpCatalogClient(catalog_settings(base_url=base, token="catalog-token", timeout_seconds=5), http)
            bad = HttpCatalogClient(catalog_settings(base_url=base, token="wrong", timeout_seconds=5), http)

            items = await good.get_items(["game-1001"], region="RU")
            try:
                await bad.get_items(["game-1001"], region="RU")
                refused = False
            except CatalogUnavailableError:
                refused = True
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert items["game-1001"].price is not None
    assert items["game-1001"].price.amount == Money(49_900, "RUB")
    assert refused
