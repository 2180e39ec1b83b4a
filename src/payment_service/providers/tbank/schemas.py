"""T-Bank EACQ v2 wire models (providers-reference §2). PascalCase, amounts in kopecks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class TBResponse(_Wire):
    Success: bool
    ErrorCode: str = "0"
    Message: str | None = None
    Details: str | None = None
    TerminalKey: str | None = None
    Status: str | None = None
    PaymentId: str | None = None
    OrderId: str | None = None
    Amount: int | None = None
    PaymentURL: str | None = None
    Data: str | None = None  # GetQr payload
    OriginalAmount: int | None = None
    NewAmount: int | None = None
    Params: list[dict[str, Any]] | None = None


class TBOrderPayment(_Wire):
    PaymentId: str
    Amount: int
    Status: str
    Success: bool | None = None
    ErrorCode: str | None = None


class TBCheckOrder(TBResponse):
    Payments: list[TBOrderPayment] = []


class TBNotification(_Wire):
    TerminalKey: str
    OrderId: str
    Success: bool
    Status: str
    PaymentId: str  # a number on the wire; coerced to str
    ErrorCode: str = "0"
    Amount: int
    CardId: str | None = None
    Pan: str | None = None
    ExpDate: str | None = None
    RebillId: str | None = None
    Token: str
