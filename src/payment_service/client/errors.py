"""Errors raised by :class:`~payment_service.client.PaymentServiceClient`.

Every error answer of the Payment Service is an RFC 9457 problem (``application/problem+json``)::

    {"type": "https://errors.payments.game/<code>", "title": ..., "status": 409, "detail": ...,
     "code": "<code>", "instance": "/v1/...", "request_id": ..., **extra}

:class:`PaymentServiceError` carries it: ``code`` is the stable machine code to branch on
(``payment_not_found``, ``insufficient_funds``, ``referral_request_conflict`` ...), ``extra`` the
problem's other members (``errors`` of a ``validation_failed``, ``minimum`` of an
``invalid_amount`` ...). :class:`PaymentServiceUnavailable` is raised when no answer could be had
(connection refused, timeout) after the bounded retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Problem(BaseModel):
    """An RFC 9457 problem as the Payment Service renders it; unknown members land in ``extra``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "about:blank"
    title: str = ""
    status: int
    detail: str = ""
    code: str
    instance: str | None = None
    request_id: str | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """Members beyond the standard ones (``errors``, ``minimum``, ``error_id`` ...)."""
        return dict(self.model_extra or {})

    @classmethod
    def from_response(cls, status: int, body: bytes, content_type: str) -> Problem:
        """The problem of an error answer; a body that is not a problem (a proxy's HTML page)
        becomes ``code = "http_<status>"`` with the text as ``detail``."""
        if "json" in content_type:
            try:
                problem = cls.model_validate_json(body)
            except ValidationError:
                pass
            else:
                return problem if problem.status == status else problem.model_copy(update={"status": status})
        text = body.decode("utf-8", "replace").strip()
        return cls(status=status, code=f"http_{status}", title=f"HTTP {status}", detail=text[:500])


class PaymentServiceError(Exception):
    """The Payment Service answered with an error (after any retries the client made).

    ``idempotency_key`` is the key the request was sent with (mutating calls): retry later with
    the same key and the service runs the request at most once.
    """

    def __init__(
        self,
        problem: Problem,
        *,
        method: str,
        path: str,
        idempotency_key: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.problem = problem
        self.method = method
        self.path = path
        self.idempotency_key = idempotency_key
        self.retry_after = retry_after
        self.attempts = attempts
        super().__init__(f"{method} {path}: {problem.status} {problem.code}: {problem.detail}")

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def request_id(self) -> str | None:
        return self.problem.request_id

    @property
    def extra(self) -> Mapping[str, Any]:
        return self.problem.extra


class PaymentServiceUnavailable(PaymentServiceError):
    """No answer from the Payment Service (connection error or timeout), retries exhausted.

    For a mutating call the outcome is unknown: it may have run. Retry later with the same
    ``idempotency_key`` — the service replays the stored answer or runs it once.
    """

    def __init__(
        self,
        cause: Exception,
        *,
        method: str,
        path: str,
        idempotency_key: str | None = None,
        attempts: int = 1,
    ) -> None:
        problem = Problem(
            status=503,
            code="transport_error",
            title="The Payment Service could not be reached",
            detail=f"{type(cause).__name__}: {cause}",
        )
        super().__init__(problem, method=method, path=path, idempotency_key=idempotency_key, attempts=attempts)
        self.__cause__ = cause


__all__ = ["PaymentServiceError", "PaymentServiceUnavailable", "Problem"]
