"""Provider credentials from Vault (KV v2); placeholder until the launcher issue lands."""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.config import Settings


async def load_provider_credentials(settings: Settings, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {}
