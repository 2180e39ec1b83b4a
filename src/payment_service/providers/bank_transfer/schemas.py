"""Bank-transfer API v1 wire models (our design, ``docs/payouts.md``). They never leave this folder."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class BTRecipient(_Wire):
    account_last4: str | None = None
    bic: str | None = None


class BTRejection(_Wire):
    code: str
    message: str = ""


class BTTransfer(_Wire):
    id: str
    client_reference: str | None = None
    status: str  # processing | completed | rejected
    amount: int
    """Integer kopecks."""
    currency: str
    recipient: BTRecipient | None = None
    rejection: BTRejection | None = None
    created_at: str | None = None
    completed_at: str | None = None


class BTErrorBody(_Wire):
    code: str = "error"
    message: str = ""


class BTEvent(_Wire):
    id: str
    type: str  # transfer.completed | transfer.rejected
    created_at: int
    data: BTTransfer
