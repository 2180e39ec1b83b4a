"""Sber/RBS wire models (providers-reference §3). Amounts in kopecks; ``errorCode`` travels as a string."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class SberResult(_Wire):
    # some methods spell it ErrorCode / ErrorMessage (§3.1)
    errorCode: str | None = Field(None, validation_alias=AliasChoices("errorCode", "ErrorCode"))
    errorMessage: str | None = Field(None, validation_alias=AliasChoices("errorMessage", "ErrorMessage"))


class SberRegistered(SberResult):
    orderId: str | None = None
    formUrl: str | None = None


class SberCardAuthInfo(_Wire):
    maskedPan: str | None = None
    expiration: str | None = None  # YYYYMM
    paymentSystem: str | None = None


class SberAmountInfo(_Wire):
    paymentState: str | None = None
    approvedAmount: int = 0
    depositedAmount: int = 0
    refundedAmount: int = 0
    feeAmount: int | None = None


class SberOrderStatus(SberResult):
    orderNumber: str | None = None
    orderStatus: int | None = None
    actionCode: int | None = None
    actionCodeDescription: str | None = None
    amount: int | None = None
    currency: str | None = None
    attributes: list[dict[str, Any]] = []
    cardAuthInfo: SberCardAuthInfo | None = None
    paymentAmountInfo: SberAmountInfo | None = None

    def md_order(self) -> str | None:
        for a in self.attributes:
            if a.get("name") == "mdOrder":
                return str(a.get("value"))
        return None
