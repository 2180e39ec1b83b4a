"""Payouts: payee accounts, and sending held balances out through payout providers.

One file per use case (``payees``, ``payouts``, ``calls``, ``lifecycle``, ``operators``); the
public names are re-exported here: ``from payment_service.payout import service as payout_service``.

Invariants this module keeps:

* **Money first.** A payout exists only with its amount held on the payee's ledger balance (hold
  balance → ``provider:<p>:payouts``, key ``payout:<id>:hold``, same transaction as the row). The
  hold is posted when the provider confirms (``payout:<id>:post``) and voided when the payout fails
  or is canceled (``payout:<id>:void``): the money is back on the balance, with the reason on the
  payout and in ``payout.failed``.
* **Record, commit, call, apply** (like payments): the attempt is committed with ``submitted_at``
  before the provider is called; no transaction is open during the call; the answer is applied in
  a new transaction by :func:`apply_result` — the same function for the synchronous answer,
  webhooks and the status sync, so duplicates and late answers have no second effect.
* **Unknown is resolved, never guessed.** A lost answer leaves the attempt ``unknown`` and the
  payout ``processing`` until :func:`sync_attempt` learns the outcome. A new attempt (a new
  idempotency key) is made only after a *definite* failure of the previous one, so the payee is
  never paid twice.
* **Details stay secret.** Payout details are Vault Transit ciphertext at rest (a snapshot on each
  payout); they are decrypted only to call the provider and never logged.
* Every status change goes through ``states.py`` and writes an outbox event in the same
  transaction; the earning module that created the payout hears the outcome through
  :func:`on_finished` hooks (same transaction).
"""

from __future__ import annotations

from payment_service.payout.service.calls import (
    NOT_REACHED_AFTER,
    REPLAY_WINDOW,
    SUBMIT_LEASE,
    VAULT_RETRY,
    receive_webhook,
    submit,
    sync_attempt,
)
from payment_service.payout.service.errors import (
    REFUSALS,
    InsufficientBalance,
    InvalidPayoutAmount,
    InvalidPayoutDetails,
    InvalidSchedule,
    NoPayoutProvider,
    PayeeForUsersOnly,
    PayeeNotFound,
    PayeeNotVerified,
    PayoutBelowMinimum,
    PayoutDetailsUnavailable,
    PayoutMethodMissing,
    PayoutNotCancelable,
    PayoutNotFound,
    PayoutNotRetryable,
    PayoutWebhookSignatureInvalid,
    PayoutWebhookVerificationUnavailable,
    UnknownPayoutProvider,
)
from payment_service.payout.service.lifecycle import FinishHook, apply_result, on_finished
from payment_service.payout.service.operators import cancel, report_health, retry
from payment_service.payout.service.payees import (
    ADMIN_SCOPE,
    DetailsVault,
    destination_from,
    get_payee,
    mark_scheduled,
    parse_money,
    scheduled_payees_due,
    set_verification,
    update_payee,
)
from payment_service.payout.service.payouts import (
    LEDGER_REASON,
    batch_for,
    can_see,
    create_payout,
    find,
    get,
    list_payouts,
)
from payment_service.payout.service.texts import format_rub, notification_text

__all__ = [
    "ADMIN_SCOPE",
    "LEDGER_REASON",
    "NOT_REACHED_AFTER",
    "REFUSALS",
    "REPLAY_WINDOW",
    "SUBMIT_LEASE",
    "VAULT_RETRY",
    "DetailsVault",
    "FinishHook",
    "InsufficientBalance",
    "InvalidPayoutAmount",
    "InvalidPayoutDetails",
    "InvalidSchedule",
    "NoPayoutProvider",
    "PayeeForUsersOnly",
    "PayeeNotFound",
    "PayeeNotVerified",
    "PayoutBelowMinimum",
    "PayoutDetailsUnavailable",
    "PayoutMethodMissing",
    "PayoutNotCancelable",
    "PayoutNotFound",
    "PayoutNotRetryable",
    "PayoutWebhookSignatureInvalid",
    "PayoutWebhookVerificationUnavailable",
    "UnknownPayoutProvider",
    "apply_result",
    "batch_for",
    "can_see",
    "cancel",
    "create_payout",
    "destination_from",
    "find",
    "format_rub",
    "get",
    "get_payee",
    "list_payouts",
    "mark_scheduled",
    "notification_text",
    "on_finished",
    "parse_money",
    "receive_webhook",
    "report_health",
    "retry",
    "scheduled_payees_due",
    "set_verification",
    "submit",
    "sync_attempt",
    "update_payee",
]
