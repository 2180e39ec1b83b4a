"""In-memory bank: transfers from the platform's account to Russian bank accounts.

``processing`` → ``completed`` | ``rejected`` after ``settle_seconds`` (0: before the create
answers; None: only on ``/_emulator/transfers/{id}/settle``), with a signed webhook.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulators._common.state import BaseState, EmulatorConfig
from emulators.bank_transfer import scenarios
from emulators.bank_transfer.webhooks import notify


@dataclass
class BankConfig(EmulatorConfig):
    settle_seconds: float | None = 0.2


class BTError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Transfer:
    id: str
    merchant: str
    client_reference: str
    amount: int
    currency: str
    recipient: dict[str, str]
    purpose: str
    metadata: dict[str, Any]
    planned: str | None
    webhook_mode: str | None
    status: str = "processing"
    rejection: dict[str, str] | None = None
    created_at: str = field(default_factory=now_iso)
    completed_at: str | None = None
    settle_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_reference": self.client_reference,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "recipient": {"account_last4": self.recipient["account_number"][-4:], "bic": self.recipient["bic"]},
            "purpose": self.purpose,
            "metadata": self.metadata,
            "rejection": self.rejection,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
        }


class BankState(BaseState):
    provider = "bank_transfer"
    config: BankConfig

    def __init__(
        self, config: BankConfig | None = None, *, merchants: dict[str, tuple[str, str]] | None = None, **kw: Any
    ) -> None:
        super().__init__(config or BankConfig(), **kw)
        self.merchants = merchants or {"test_bank_key": ("platform", "test_bank_webhook_secret")}
        self.transfers: dict[str, Transfer] = {}

    def reset(self) -> None:
        super().reset()
        for t in self.transfers.values():
            if t.settle_task is not None:
                t.settle_task.cancel()
        self.transfers.clear()

    def objects(self) -> dict[str, Any]:
        return {"transfers": {k: v.public() for k, v in self.transfers.items()}}

    def plan(self, amount_minor: int) -> str | None:
        if self.forced:
            return self.forced.popleft()
        return scenarios.amount_outcome(amount_minor)

    def secret_of(self, merchant: str) -> str:
        return next(secret for m, secret in self.merchants.values() if m == merchant)

    def get(self, merchant: str, transfer_id: str) -> Transfer:
        t = self.transfers.get(transfer_id)
        if t is None or t.merchant != merchant:
            raise BTError(404, "not_found", "Transfer not found")
        return t

    @staticmethod
    def validate(body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise BTError(422, "invalid_request", "amount must be a positive integer of kopecks")
        if body.get("currency") != "RUB":
            raise BTError(422, "invalid_request", "only RUB transfers are supported")
        if not str(body.get("client_reference") or "").strip():
            raise BTError(422, "invalid_request", "client_reference is required")
        r = body.get("recipient")
        if not isinstance(r, dict):
            raise BTError(422, "invalid_request", "recipient is required")
        name, account, bic = str(r.get("name") or ""), str(r.get("account_number") or ""), str(r.get("bic") or "")
        if not name.strip():
            raise BTError(422, "invalid_request", "recipient.name is required")
        if len(bic) != 9 or not bic.isdigit():
            raise BTError(422, "invalid_bic", "recipient.bic must be 9 digits")
        if len(account) != 20 or not account.isdigit() or not scenarios.account_matches_bic(account, bic):
            raise BTError(422, "invalid_account", "recipient.account_number is not a valid account of this bank")
        inn = r.get("inn")
        if inn is not None and (not str(inn).isdigit() or len(str(inn)) not in (10, 12)):
            raise BTError(422, "invalid_request", "recipient.inn must be 10 or 12 digits")
        if not str(body.get("purpose") or "").strip() or len(str(body["purpose"])) > 210:
            raise BTError(422, "invalid_request", "purpose is required (at most 210 characters)")
        recipient = {"name": name, "account_number": account, "bic": bic}
        if inn is not None:
            recipient["inn"] = str(inn)
        return amount, recipient

    def create(self, merchant: str, body: dict[str, Any], planned: str | None) -> Transfer:
        amount, recipient = self.validate(body)
        reference = str(body["client_reference"])
        if any(t.merchant == merchant and t.client_reference == reference for t in self.transfers.values()):
            raise BTError(409, "duplicate_reference", "client_reference already used")
        t = Transfer(
            id=f"bt_{uuid.uuid4().hex[:24]}",
            merchant=merchant,
            client_reference=reference,
            amount=amount,
            currency="RUB",
            recipient=recipient,
            purpose=str(body["purpose"]),
            metadata=dict(body.get("metadata") or {}),
            planned=planned if planned and (planned == "success" or planned.startswith("reject:")) else None,
            webhook_mode=planned if planned in scenarios.WEBHOOK_MODES else None,
        )
        self.transfers[t.id] = t
        self.book("debit_hold", t.id, amount, "RUB")
        return t

    def schedule_settle(self, t: Transfer) -> None:
        delay = self.config.settle_seconds
        if delay is None or delay <= 0 or t.status != "processing":
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            if t.status == "processing":
                self.settle(t.id)

        t.settle_task = asyncio.get_running_loop().create_task(later())

    def settle(self, transfer_id: str, outcome: str | None = None) -> dict[str, Any]:
        t = self.transfers[transfer_id]
        if t.status != "processing":
            raise ValueError(f"transfer is {t.status}")
        decided = outcome or t.planned or "success"
        if decided.startswith("reject:"):
            code = decided.split(":", 1)[1]
            t.status = "rejected"
            t.rejection = {"code": code, "message": scenarios.REJECTIONS.get(code, code)}
            self.book("release", t.id, t.amount, t.currency)
            event = "transfer.rejected"
        else:
            t.status = "completed"
            t.completed_at = now_iso()
            self.book("transfer", t.id, t.amount, t.currency)
            event = "transfer.completed"
        notify(self, event=event, data=t.public(), secret=self.secret_of(t.merchant), key=t.id, mode=t.webhook_mode)
        return t.public()

    async def fire_webhook(self, payment_id: str) -> None:
        t = self.transfers[payment_id]
        event = {"completed": "transfer.completed", "rejected": "transfer.rejected"}.get(t.status)
        if event:
            notify(self, event=event, data=t.public(), secret=self.secret_of(t.merchant), key=t.id, mode=None)
