"""Errors of the payout engine (stable codes) and the refusals of :func:`create_payout`."""

from __future__ import annotations

from payment_service.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)


class PayeeNotFound(NotFound):
    code = "payee_not_found"
    title = "This user has no payee account"


class PayeeForUsersOnly(Forbidden):
    code = "payee_for_users_only"
    title = "Only a user (a user token) has a payee account of their own"


class PayeeNotVerified(Conflict):
    code = "payee_not_verified"
    title = "The payee's identity is not verified (KYC); payouts are not allowed yet"


class PayoutMethodMissing(Conflict):
    code = "payout_method_missing"
    title = "The payee has no payout method that can take this payout"


class InvalidPayoutDetails(Unprocessable):
    code = "invalid_payout_details"
    title = "The payout details are not valid for the method"


class InvalidSchedule(Unprocessable):
    code = "invalid_schedule"
    title = "Weekly schedules need a weekday 1-7, monthly ones a day 1-28, manual none"


class InvalidPayoutAmount(Unprocessable):
    code = "invalid_amount"
    title = "The amount is not valid for a payout"


class PayoutBelowMinimum(Unprocessable):
    code = "amount_below_minimum"
    title = "The amount is below the minimum payout"


class NoPayoutProvider(ServiceUnavailable):
    code = "no_payout_provider"
    title = "No payout provider can make this payout now"


class InsufficientBalance(Conflict):
    code = "insufficient_balance"
    title = "The balance does not hold the amount to pay out"


class PayoutDetailsUnavailable(ServiceUnavailable):
    code = "payout_details_unavailable"
    title = "Payout details cannot be encrypted or decrypted right now; retry"


class PayoutNotFound(NotFound):
    code = "payout_not_found"
    title = "Payout not found"


class PayoutNotCancelable(Conflict):
    code = "payout_not_cancelable"
    title = "Only a payout no provider has yet can be canceled"


class PayoutNotRetryable(Conflict):
    code = "payout_not_retryable"
    title = "A finished payout cannot be retried"


class UnknownPayoutProvider(NotFound):
    code = "unknown_provider"
    title = "No such payout provider"


class PayoutWebhookSignatureInvalid(Unauthorized):
    code = "webhook_signature_invalid"
    title = "The webhook could not be authenticated"


class PayoutWebhookVerificationUnavailable(ServiceUnavailable):
    code = "webhook_verification_unavailable"
    title = "The webhook cannot be verified with the provider right now; deliver it again later"


REFUSALS: tuple[type[AppError], ...] = (
    PayeeNotFound,
    PayeeNotVerified,
    PayoutMethodMissing,
    InvalidPayoutAmount,
    PayoutBelowMinimum,
    NoPayoutProvider,
    InsufficientBalance,
)
"""Why :func:`create_payout` refuses a payout (business answers, not failures to retry)."""
