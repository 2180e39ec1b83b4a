"""Errors as RFC 9457 ``application/problem+json`` with a stable machine ``code``.

Every business error is an :class:`AppError` subclass declared at the top of the module that
raises it. This module knows no web framework (services import it); the handlers that render
problems live in :mod:`payment_service.exception_handlers`.

Problem body::

    {"type": "https://errors.payments.game/<code>", "title": ..., "status": 409,
     "detail": ..., "code": "<code>", "instance": "/v1/...", "request_id": ..., **extra}
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://errors.payments.game/"


class AppError(Exception):
    """Base of every expected error. Subclasses set ``code``, ``status`` and ``title``."""

    code: ClassVar[str] = "app_error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request failed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(AppError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(AppError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotFound(AppError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(AppError):
    code = "conflict"
    status = 409
    title = "Conflict"


class Unprocessable(AppError):
    code = "unprocessable"
    status = 422
    title = "Unprocessable request"


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


DATABASE_BUSY_RETRY_AFTER = 2
"""Seconds a client should wait after ``database_busy`` (no pooled connection became free in time)."""


class DatabaseBusy(ServiceUnavailable):
    """No pooled connection became free in ``db.pool_timeout_seconds``, a statement ran into its
    timeout, or a donation got no turn on its streamer in ``donations.turn_timeout_seconds``:
    overload, not a bug. Work a checkpoint committed before (a payment's attempt) is
    resumed by the retry with the same key."""

    code = "database_busy"
    title = "The database is busy"

    def __init__(self) -> None:
        super().__init__(
            "No database connection became free in time; retry with the same Idempotency-Key",
            retry_after=DATABASE_BUSY_RETRY_AFTER,
        )


def problem_body(
    *,
    code: str,
    status: int,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    for key, value in extra.items():
        # Extras never overwrite the standard members (a "status" extra must not replace the HTTP status).
        body[key if key not in body else f"{key}_detail"] = value
    return body
