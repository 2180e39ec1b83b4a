"""Historic QIWI P2P bills API shapes (providers-reference §4.2), kept for migration/reading old data only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class QiwiAmount(_Wire):
    value: str
    currency: str


class QiwiStatus(_Wire):
    value: str  # WAITING | PAID | REJECTED | EXPIRED
    changedDateTime: str | None = None


class QiwiBill(_Wire):
    siteId: str
    billId: str
    amount: QiwiAmount
    status: QiwiStatus
