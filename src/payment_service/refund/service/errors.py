"""Refund errors (``AppError`` subclasses with a stable ``code``)."""

from __future__ import annotations

from payment_service.errors import Conflict, NotFound, Unprocessable


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "Refund not found"


class PaymentNotRefundable(Conflict):
    code = "payment_not_refundable"
    title = "Only a succeeded (captured) payment can be refunded"


class RefundExceedsPayment(Conflict):
    code = "refund_exceeds_payment"
    title = "The refund exceeds what is left of the payment (captured minus refunded and reserved)"


class InvalidRefundAmount(Unprocessable):
    code = "invalid_refund_amount"
    title = "The amount is not valid for the payment's currency"


class RefundWindowExpired(Conflict):
    code = "refund_window_expired"
    title = "The purchase is too old to be refunded"


class RefundPlaytimeExceeded(Conflict):
    code = "refund_playtime_exceeded"
    title = "The purchased game was played for too long to be refunded"


class RefundDestinationNotAllowed(Conflict):
    code = "refund_destination_not_allowed"
    title = "This payment cannot be refunded to that destination"


class PartialRefundNotSupported(Unprocessable):
    code = "partial_refund_not_supported"
    title = "The payment's provider refunds only the whole amount; refund it all or to the wallet"


class RefundSourceInsufficient(Conflict):
    code = "refund_source_insufficient"
    title = "The money of this payment was already spent or paid out and cannot be taken back"


class RefundNotPendingReview(Conflict):
    code = "refund_not_pending_review"
    title = "Only a refund waiting for review can be approved or rejected"
