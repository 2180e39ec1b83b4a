"""Normalized provider errors: the only exceptions that leave a provider adapter.

Every adapter maps its provider's error codes, decline codes, HTTP statuses and transport
exceptions (httpx, SDK) into this tree in ONE function (``_map_error`` in its ``adapter.py``).
Callers branch on the class, never on provider codes::

    ProviderError                        base; .provider, .operation, .provider_code, .message
    ├── ProviderDeclined                 the payment is definitively refused (.decline_code, .result)
    ├── ProviderUnavailable              DEFINITE: nothing was created at the provider
    │                                    (connection refused, circuit open, 503 "not processed",
    │                                    credentials/terminal rejected);
    │                                    safe to retry or to fail over to another provider
    ├── ProviderTimeout                  UNKNOWN outcome of a mutating call (read timeout, 500/502/504,
    │                                    connection dropped after the request was sent); NEVER fail
    │                                    over: the status-sync job must resolve it with get_status
    ├── ProviderInvalidRequest           our request is wrong (validation, wrong state); retrying
    │   │                                the same request will not help
    │   └── ProviderNotFound             the provider has no such payment (looked up by our attempt
    │                                    id: it was never created)
    ├── ProviderSignatureInvalid         a webhook failed authentication (signature, IP, re-fetch)
    ├── ProviderOperationNotSupported    the provider has no such operation (or is disabled)
    │   └── ProviderDisabled             the provider is switched off on purpose (e.g. QIWI)
    └── ProviderAmountMismatch           the provider reports another amount/currency than we asked

Read-only calls (get_status) never raise ProviderTimeout: their failures are ProviderUnavailable,
because a lost read has no side effect to resolve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payment_service.providers.ports import ProviderResult


class ProviderError(Exception):
    """Base of every normalized provider error."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        operation: str = "",
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.operation = operation
        self.provider_code = provider_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"operation={self.operation!r}, provider_code={self.provider_code!r})"
        )


class ProviderDeclined(ProviderError):
    """The payment was refused by the issuer/provider; ``decline_code`` is a normalized code."""

    def __init__(
        self,
        message: str,
        *,
        decline_code: str,
        result: ProviderResult | None = None,
        provider: str = "",
        operation: str = "",
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, operation=operation, provider_code=provider_code)
        self.decline_code = decline_code
        self.result = result


class ProviderUnavailable(ProviderError):
    """Definite failure: the provider did not create anything. Safe to fail over."""


class ProviderTimeout(ProviderError):
    """Unknown outcome of a mutating call. Never fail over; resolve with get_status."""


class ProviderInvalidRequest(ProviderError):
    """The provider rejected the request itself (parameters, state, credentials)."""


class ProviderNotFound(ProviderInvalidRequest):
    """The provider has no such payment/order (by our attempt id: it was never created)."""


class ProviderSignatureInvalid(ProviderError):
    """A webhook/notification could not be authenticated."""


class ProviderOperationNotSupported(ProviderError):
    """The provider (or this adapter) has no such operation."""


class ProviderDisabled(ProviderOperationNotSupported):
    """The provider is disabled on purpose; the message says why."""


class ProviderAmountMismatch(ProviderError):
    """The provider reported a different amount or currency than requested."""

    def __init__(
        self,
        message: str,
        *,
        expected: tuple[int, str],
        actual: tuple[int, str],
        provider: str = "",
        operation: str = "",
    ) -> None:
        super().__init__(message, provider=provider, operation=operation)
        self.expected = expected
        self.actual = actual
