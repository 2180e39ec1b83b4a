"""The client shape shared by the Bearer-key JSON providers (mobile aggregator, bank transfer).

Bearer API key; ``Idempotency-Key`` on every POST (so POSTs are retried safely); an answer other
than HTTP 200 with a JSON object raises the subclass's ``api_error`` built from the body's ``error``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.settings import ProviderSettings


class _ErrorBody(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


ErrorBodyT = TypeVar("ErrorBodyT", bound=_ErrorBody)


class JsonApiError(Exception, Generic[ErrorBodyT]):
    """A non-200 answer (or one that is not a JSON object) with the provider's error body."""

    def __init__(self, status: int, error: ErrorBodyT, operation: str) -> None:
        super().__init__(f"{status} {error.code}: {error.message}")
        self.status = status
        self.error = error
        self.operation = operation


class JsonApiClient:
    """Subclasses name their error types (``api_error``, ``error_model``) and the operations."""

    api_error: ClassVar[type[JsonApiError[Any]]]
    error_model: ClassVar[type[BaseModel]]

    def __init__(
        self,
        provider: str,
        settings: ProviderSettings,
        *,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.http = ProviderHTTP(
            provider, settings, transport=transport, breaker=breaker, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        response = await self.http.request(
            operation,
            method,
            path,
            mutating=method == "POST",
            idempotent=True,
            headers=headers,
            json=body,
            params=params,
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            err = data.get("error") if isinstance(data, dict) else None
            raise self.api_error(response.status_code, self.error_model.model_validate(err or {}), operation)
        return data
