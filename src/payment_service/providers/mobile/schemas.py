"""Aggregator API v1 wire models (our design, documented in providers/README.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class MCConfirmation(_Wire):
    type: str  # "sms"
    expires_at: int | None = None


class MCCharge(_Wire):
    id: str
    merchant_charge_id: str
    status: str  # pending_confirmation | authorized | succeeded | failed | canceled
    operator: str | None = None
    phone_masked: str | None = None
    amount: int
    currency: str
    captured_amount: int = 0
    refunded_amount: int = 0
    fee: int | None = None
    failure_code: str | None = None
    confirmation: MCConfirmation | None = None


class MCRefund(_Wire):
    id: str
    charge_id: str
    status: str
    amount: int
    currency: str


class MCErrorBody(_Wire):
    code: str = "unknown"
    message: str = ""


class MCEvent(_Wire):
    id: str
    type: str
    created_at: int | None = None
    data: dict[str, Any]
