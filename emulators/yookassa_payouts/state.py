"""In-memory YooKassa Payouts: payout gateways (agentId), their payout balance, payouts, card tokens.

Status flow (providers-reference §1.15): created ``pending`` → ``succeeded`` | ``canceled``. The
emulator resolves a pending payout after ``settle_seconds`` (0: before answering the create, None:
only when ``/_emulator/payouts/{id}/settle`` is called) and sends ``payout.succeeded`` /
``payout.canceled``. The gateway's payout balance is reserved at creation and released on
cancellation; a payout above it is canceled at once with ``insufficient_funds``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulators._common import magic
from emulators._common.money import format_minor, parse_decimal_minor
from emulators._common.state import BaseState, EmulatorConfig
from emulators.yookassa_payouts import scenarios
from emulators.yookassa_payouts.webhooks import notify


@dataclass
class PayoutsConfig(EmulatorConfig):
    settle_seconds: float | None = 0.2
    """When a pending payout is resolved: after this many seconds; 0 before the create answers;
    None only on ``/_emulator/payouts/{id}/settle``."""
    payout_balance_minor: int = 100_000_000_00
    """The gateway's payout balance (topped up from the merchant's account in real life)."""
    allow_raw_cards: bool = False
    """True: accept ``payout_destination_data.card.number`` (a PCI DSS merchant)."""


class YPError(Exception):
    def __init__(self, status: int, code: str, description: str, parameter: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        b: dict[str, Any] = {
            "type": "error",
            "id": str(uuid.uuid4()),
            "code": self.code,
            "description": self.description,
        }
        if self.parameter:
            b["parameter"] = self.parameter
        return b


def now_iso() -> str:
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass
class PayoutRec:
    obj: dict[str, Any]
    agent_id: str
    amount_minor: int
    planned: str | None
    webhook_mode: str | None
    reserved: bool = False
    settle_task: asyncio.Task[None] | None = field(default=None, repr=False)


class PayoutsState(BaseState):
    provider = "yookassa_payouts"
    config: PayoutsConfig

    def __init__(self, config: PayoutsConfig | None = None, *, agents: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(config or PayoutsConfig(), **kw)
        self.agents = agents or {"505050": "test_payout_secret"}
        self.payouts: dict[str, PayoutRec] = {}
        self.tokens: dict[str, dict[str, str]] = {}
        self.answered_202: set[tuple[str, str]] = set()
        self.balance_minor = self.config.payout_balance_minor

    def reset(self) -> None:
        super().reset()
        for rec in self.payouts.values():
            if rec.settle_task is not None:
                rec.settle_task.cancel()
        self.payouts.clear()
        self.tokens.clear()
        self.answered_202.clear()
        self.balance_minor = self.config.payout_balance_minor

    def objects(self) -> dict[str, Any]:
        return {"payouts": {k: v.obj for k, v in self.payouts.items()}, "payout_balance_minor": self.balance_minor}

    def plan(self, amount_minor: int) -> str | None:
        if self.forced:
            return self.forced.popleft()
        return scenarios.amount_outcome(amount_minor)

    # -- the payout widget ---------------------------------------------------------------------
    def mint_token(self, card_number: str) -> dict[str, str]:
        """What YooKassa's payout widget returns for a card: a token (card synonym) and its mask."""
        digits = "".join(ch for ch in card_number if ch.isdigit())
        if not 16 <= len(digits) <= 19:
            raise ValueError("card number must have 16-19 digits")
        token = "pt-" + secrets.token_hex(16)
        card = {
            "first6": digits[:6],
            "last4": digits[-4:],
            "card_type": magic.card_brand(digits),
            "issuer_country": "RU",
            "issuer_name": "Emulated Bank",
        }
        self.tokens[token] = card
        return {"payout_token": token, **card}

    # -- create --------------------------------------------------------------------------------
    def get(self, agent_id: str, payout_id: str) -> PayoutRec:
        rec = self.payouts.get(payout_id)
        if rec is None or rec.agent_id != agent_id:
            raise YPError(404, "not_found", "Payout not found", "payout_id")
        return rec

    def validate_create(self, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        amount = body.get("amount")
        if not isinstance(amount, dict):
            raise YPError(400, "invalid_request", "Parameter amount is missing", "amount")
        minor = parse_decimal_minor(amount.get("value"))
        if minor is None or minor <= 0:
            raise YPError(400, "invalid_request", "Illegal amount value", "amount.value")
        currency = str(amount.get("currency", ""))
        if currency != "RUB":
            raise YPError(400, "invalid_request", "Currencies do not match", "amount.currency")
        description = body.get("description")
        if description is not None and len(str(description)) > 128:
            raise YPError(400, "invalid_request", "Description is too long. Max. length is 128", "description")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 16:
            raise YPError(400, "invalid_request", "Metadata object is limited to 16 keys", "metadata")
        for k, v in metadata.items():
            if len(str(k)) > 32 or (v is not None and len(str(v)) > 512):
                raise YPError(400, "invalid_request", "Metadata key or value is too long", "metadata")
        sources = [k for k in ("payout_destination_data", "payout_token", "payment_method_id") if body.get(k)]
        if len(sources) != 1:
            raise YPError(
                400,
                "invalid_request",
                "Request should contain one of: payout_destination_data, payout_token, payment_method_id",
            )
        if body.get("payment_method_id"):
            raise YPError(400, "invalid_request", "Payment method is not found", "payment_method_id")
        if body.get("payout_token"):
            card = self.tokens.get(str(body["payout_token"]))
            if card is None:
                raise YPError(400, "invalid_request", "Payout token is not valid", "payout_token")
            return minor, currency, {"type": "bank_card", "card": dict(card)}
        data = body["payout_destination_data"]
        if not isinstance(data, dict):
            raise YPError(400, "invalid_request", "Illegal payout_destination_data", "payout_destination_data")
        kind = data.get("type")
        if kind == "bank_card":
            number = str((data.get("card") or {}).get("number", ""))
            if not self.config.allow_raw_cards:
                raise YPError(403, "forbidden", "Forbidden to send raw bank card data", "payout_destination_data.card")
            if not number.isdigit() or not 16 <= len(number) <= 19:
                raise YPError(
                    400, "invalid_request", "Invalid card number value", "payout_destination_data.card.number"
                )
            card = {k: v for k, v in self.mint_token(number).items() if k != "payout_token"}
            return minor, currency, {"type": "bank_card", "card": card}
        if kind == "yoo_money":
            account = str(data.get("account_number", ""))
            if not account.isdigit() or not 11 <= len(account) <= 33:
                raise YPError(
                    400, "invalid_request", "Illegal account_number", "payout_destination_data.account_number"
                )
            return minor, currency, {"type": "yoo_money", "account_number": account}
        if kind == "sbp":
            phone = str(data.get("phone", ""))
            if len(phone) != 11 or not phone.isdigit():
                raise YPError(400, "invalid_request", "Phone format is illegal", "payout_destination_data.phone")
            bank_id = str(data.get("bank_id", ""))
            if bank_id not in {b["bank_id"] for b in scenarios.SBP_BANKS}:
                raise YPError(400, "invalid_request", "Bank not found", "payout_destination_data.bank_id")
            return minor, currency, {"type": "sbp", "phone": phone, "bank_id": bank_id, "recipient_checked": False}
        raise YPError(400, "invalid_request", "Unsupported payout destination type", "payout_destination_data.type")

    def create(self, agent_id: str, body: dict[str, Any], planned: str | None) -> PayoutRec:
        minor, currency, destination = self.validate_create(body)
        pid = "po-" + uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:4] + "-" + uuid.uuid4().hex[:12]
        obj: dict[str, Any] = {
            "id": pid,
            "amount": {"value": format_minor(minor), "currency": currency},
            "status": "pending",
            "payout_destination": destination,
            "created_at": now_iso(),
            "metadata": body.get("metadata") or {},
            "test": True,
        }
        if body.get("description") is not None:
            obj["description"] = body["description"]
        rec = PayoutRec(
            obj=obj,
            agent_id=agent_id,
            amount_minor=minor,
            planned=planned if planned and (planned == "success" or planned.startswith("cancel:")) else None,
            webhook_mode=planned if planned in scenarios.WEBHOOK_MODES else None,
        )
        self.payouts[pid] = rec
        if minor > self.balance_minor:
            self._cancel(rec, "insufficient_funds")
            return rec
        if destination["type"] == "sbp" and minor > scenarios.SBP_MAX_MINOR:
            self._cancel(rec, "one_time_limit_exceeded")
            return rec
        self.balance_minor -= minor
        rec.reserved = True
        self.book("reserve", pid, minor, currency)
        return rec

    def schedule_settle(self, rec: PayoutRec) -> None:
        delay = self.config.settle_seconds
        if delay is None or delay <= 0 or rec.obj["status"] != "pending":
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            if rec.obj["status"] == "pending":
                self.settle(rec.obj["id"])

        rec.settle_task = asyncio.get_running_loop().create_task(later())

    # -- resolution ----------------------------------------------------------------------------
    def settle(self, payout_id: str, outcome: str | None = None) -> dict[str, Any]:
        rec = self.payouts[payout_id]
        if rec.obj["status"] != "pending":
            raise ValueError(f"payout is {rec.obj['status']}")
        decided = outcome or rec.planned or "success"
        if decided.startswith("cancel:"):
            self._cancel(rec, decided.split(":", 1)[1])
        else:
            obj = rec.obj
            obj["status"] = "succeeded"
            obj["succeeded_at"] = now_iso()
            if obj["payout_destination"]["type"] == "sbp":
                obj["payout_destination"]["sbp_operation_id"] = uuid.uuid4().hex.upper()
                obj["payout_destination"]["recipient_checked"] = True
            rec.reserved = False
            self.book("payout", payout_id, rec.amount_minor, obj["amount"]["currency"])
            self._notify(rec, "payout.succeeded")
        return public(rec.obj)

    def _cancel(self, rec: PayoutRec, reason: str) -> None:
        obj = rec.obj
        obj["status"] = "canceled"
        obj["cancellation_details"] = {"party": scenarios.PARTY.get(reason, "payout_network"), "reason": reason}
        if rec.reserved:
            rec.reserved = False
            self.balance_minor += rec.amount_minor
            self.book("release", obj["id"], rec.amount_minor, obj["amount"]["currency"])
        self._notify(rec, "payout.canceled")

    def _notify(self, rec: PayoutRec, event: str) -> None:
        notify(self, event=event, obj=public(rec.obj), key=rec.obj["id"], mode=rec.webhook_mode)

    async def fire_webhook(self, payment_id: str) -> None:
        rec = self.payouts[payment_id]
        event = {"succeeded": "payout.succeeded", "canceled": "payout.canceled"}.get(rec.obj["status"])
        if event:
            notify(self, event=event, obj=public(rec.obj), key=payment_id, mode=None)


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}
