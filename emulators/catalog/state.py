"""In-memory state of the catalog emulator: items, faults to inject, requests received."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from emulators.catalog.scenarios import default_items

FAULTS = ("unavailable", "error", "hang", "garbage", "wrong_currency")
"""``unavailable``: 503; ``error``: 500; ``hang``: answer after ``hang_seconds``; ``garbage``: 200 with
a body that is not the API's JSON; ``wrong_currency``: prices in USD whatever the region."""


@dataclass
class CatalogConfig:
    hang_seconds: float = 30.0
    token: str | None = None
    """When set, requests must carry ``Authorization: Bearer <token>``."""


@dataclass
class CatalogState:
    config: CatalogConfig = field(default_factory=CatalogConfig)
    items: dict[str, dict[str, Any]] = field(default_factory=default_items)
    faults: deque[str] = field(default_factory=deque)
    """Faults for the next requests, one per request (``sticky`` repeats the last forever)."""
    sticky: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    """Change events the real catalog would have published (``catalog.price_changed`` …)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def reset(self) -> None:
        self.items = default_items()
        self.faults.clear()
        self.sticky = None
        self.requests.clear()
        self.changes.clear()

    def record(self, method: str, path: str, query: str) -> None:
        self.requests.append({"method": method, "path": path, "query": query, "at": time.time()})

    def next_fault(self) -> str | None:
        if self.faults:
            return self.faults.popleft()
        return self.sticky

    def inject(self, mode: str, count: int) -> None:
        if count < 0:
            self.sticky = mode
        else:
            self.faults.extend([mode] * count)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.sticky = None

    def upsert(self, item: dict[str, Any]) -> dict[str, Any]:
        self.items[item["id"]] = copy.deepcopy(item)
        self._changed("catalog.item_updated", item["id"])
        return self.items[item["id"]]

    def set_price(
        self, item_id: str, region: str, currency: str, amount_minor: int, list_minor: int | None, discount: int
    ) -> dict[str, Any]:
        item = self.items[item_id]
        item.setdefault("prices", {})[region] = {
            "currency": currency,
            "amount_minor": amount_minor,
            "list_minor": list_minor if list_minor is not None else amount_minor,
            "discount_percent": discount,
        }
        return self._changed("catalog.discount_changed" if discount else "catalog.price_changed", item_id, region)

    def _changed(self, type_: str, item_id: str, region: str | None = None) -> dict[str, Any]:
        event = {"type": type_, "data": {"item_id": item_id, **({"region": region} if region else {})}}
        self.changes.append(event)
        return event
