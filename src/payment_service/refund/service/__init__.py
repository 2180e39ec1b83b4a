"""Refunds: ask, decide, record, commit, call, apply — to the original payment method or the wallet.

One file per use case (``requests``, ``review``, ``provider``, ``approval``, ``reading``, ``basis``;
``lifecycle`` holds the status changes and events they share, ``errors`` the errors); the public names
are re-exported here: ``from payment_service.refund import service as refund_service``.

Invariants this module keeps:

* **Never more than was captured.** A request locks the payment row (``payment_service.
  get_for_update``) and counts every refund that is pending review, in flight, unknown or
  succeeded as taken; ``payments.refunded_minor`` (succeeded refunds only) moves under the same
  lock, and a check constraint backs it.
* **Record, commit, call, apply** (like payments): an approved original-method refund is
  committed with a ledger hold (sources → provider clearing) *before* the provider is called with
  the refund id as idempotency key; no transaction is open during the call; the answer is applied
  in a new transaction. A lost answer leaves the refund ``unknown`` and :func:`sync` resolves it
  — by replaying the call under the same key, or, for providers whose refund call is not
  idempotent, from the provider's refunded total. Nothing is guessed, nothing refunded twice.
* **Money moves only through the ledger**, with keys derived from the refund id: the hold is
  posted when the provider confirms and voided when it refuses; a wallet refund is one transfer
  (sources → ``user:<payer>:wallet``) at approval. Sources default to the account the payment
  credited; a purpose's module may say otherwise (:func:`register_basis`), and each refund takes
  back from each source in proportion to what it still holds (``rules.allocate``).
* Every status change goes through ``states.py`` and writes an outbox event in the same
  transaction (``refund.*``; ``payment.refunded`` when money went back).
"""

from __future__ import annotations

from payment_service.refund.service.basis import (
    GAME_ID_KEY,
    BasisResolver,
    RefundBasis,
    basis_of,
    policy_from,
    register_basis,
    unregister_basis,
)
from payment_service.refund.service.errors import (
    InvalidRefundAmount,
    PartialRefundNotSupported,
    PaymentNotRefundable,
    RefundDestinationNotAllowed,
    RefundExceedsPayment,
    RefundNotFound,
    RefundNotPendingReview,
    RefundPlaytimeExceeded,
    RefundSourceInsufficient,
    RefundWindowExpired,
)
from payment_service.refund.service.lifecycle import (
    SYNC_BACKOFF,
    next_sync_delay,
)
from payment_service.refund.service.provider import (
    MAX_REPLAY_AGE,
    NOTHING_HAPPENED_AFTER,
    apply_provider_refund,
    sync,
)
from payment_service.refund.service.reading import (
    can_see,
    get,
    list_refunds,
)
from payment_service.refund.service.requests import (
    request,
)
from payment_service.refund.service.review import (
    approve,
    reject,
)

__all__ = [
    "GAME_ID_KEY",
    "MAX_REPLAY_AGE",
    "NOTHING_HAPPENED_AFTER",
    "SYNC_BACKOFF",
    "BasisResolver",
    "InvalidRefundAmount",
    "PartialRefundNotSupported",
    "PaymentNotRefundable",
    "RefundBasis",
    "RefundDestinationNotAllowed",
    "RefundExceedsPayment",
    "RefundNotFound",
    "RefundNotPendingReview",
    "RefundPlaytimeExceeded",
    "RefundSourceInsufficient",
    "RefundWindowExpired",
    "apply_provider_refund",
    "approve",
    "basis_of",
    "can_see",
    "get",
    "list_refunds",
    "next_sync_delay",
    "policy_from",
    "register_basis",
    "reject",
    "request",
    "sync",
    "unregister_basis",
]
