"""Every ORM model; importing this package lets Alembic see all tables."""

from payment_service.models.base import Base
from payment_service.models.donation import Donation, DonationStreamer
from payment_service.models.idempotency_key import IdempotencyKey
from payment_service.models.inbox import DeadLetter, InboxEvent
from payment_service.models.ledger import LedgerAccount, LedgerAccountDelta, LedgerEntry, LedgerHold, LedgerTransfer
from payment_service.models.order import Order, OrderLine, WalletTopUp
from payment_service.models.outbox import OutboxEvent
from payment_service.models.payment import Payment, PaymentAttempt, ProviderEvent
from payment_service.models.payout import PayeeAccount, Payout, PayoutAttempt, PayoutBatch, ReferralPayout
from payment_service.models.refund import Refund

__all__ = ["Base", "DeadLetter", "IdempotencyKey", "InboxEvent", "OutboxEvent"]
__all__ += ["LedgerAccount", "LedgerAccountDelta", "LedgerEntry", "LedgerHold", "LedgerTransfer"]
__all__ += ["Payment", "PaymentAttempt", "ProviderEvent"]
__all__ += ["Refund"]
__all__ += ["Donation", "DonationStreamer"]
__all__ += ["Order", "OrderLine", "WalletTopUp"]
__all__ += ["PayeeAccount", "Payout", "PayoutAttempt", "PayoutBatch", "ReferralPayout"]
