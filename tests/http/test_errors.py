"""Bad input always gets an RFC 9457 problem with a stable code, never a stack trace."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from structlog.testing import capture_logs

from tests.conftest import Tokens


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(gt=0)
    currency: str = Field(pattern="^[A-Z]{3}$")


router = APIRouter()


@router.post("/v1/_test/strict", status_code=201)
async def strict(body: Strict) -> dict[str, int]:
    return {"amount": body.amount}


@router.get("/v1/_test/crash")
async def crash() -> None:
    raise ZeroDivisionError("secret internals")


@pytest.fixture
async def strict_client(app: FastAPI) -> httpx.AsyncClient:
    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert "Traceback" not in r.text
    return dict(body)


class TestProblemDetails:
    async def test_malformed_json(self, strict_client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await strict_client.post(
            "/v1/_test/strict",
            content=b'{"amount": 1,',
            headers={**tokens.headers(tokens.user(), key="m"), "content-type": "application/json"},
        )

        _problem(r, 400, "malformed_json")

    async def test_wrong_types_list_each_field(self, strict_client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await strict_client.post(
            "/v1/_test/strict",
            json={"amount": "many", "currency": "rub"},
            headers=tokens.headers(tokens.user(), key="w"),
        )

        body = _problem(r, 422, "validation_failed")
        fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
        assert fields == {"amount", "currency"}

    async def test_unknown_field_is_rejected(self, strict_client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await strict_client.post(
            "/v1/_test/strict",
            json={"amount": 1, "currency": "RUB", "admin": True},
            headers=tokens.headers(tokens.user(), key="u"),
        )

        body = _problem(r, 422, "validation_failed")
        assert body["errors"] == [  # type: ignore[comparison-overlap]
            {
                "field": "admin",
                "location": "body",
                "type": "extra_forbidden",
                "message": "Extra inputs are not permitted",
            }
        ]

    async def test_oversized_body(self, strict_client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await strict_client.post(
            "/v1/_test/strict",
            content=b"{" + b" " * 2_000_000 + b"}",
            headers={**tokens.headers(tokens.user(), key="o"), "content-type": "application/json"},
        )

        _problem(r, 413, "payload_too_large")

    async def test_oversized_body_without_content_length(
        self, strict_client: httpx.AsyncClient, tokens: Tokens
    ) -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b" " * 100_000

        r = await strict_client.post(
            "/v1/_test/strict",
            content=chunks(),
            headers={**tokens.headers(tokens.user(), key="o2"), "content-type": "application/json"},
        )

        _problem(r, 413, "payload_too_large")

    async def test_unknown_route(self, strict_client: httpx.AsyncClient) -> None:
        _problem(await strict_client.get("/v1/nothing-here"), 404, "not_found")

    async def test_wrong_method(self, strict_client: httpx.AsyncClient) -> None:
        _problem(await strict_client.delete("/health/live"), 405, "method_not_allowed")

    async def test_unexpected_error_is_500_with_an_id_in_the_logs(self, strict_client: httpx.AsyncClient) -> None:
        with capture_logs() as logs:
            r = await strict_client.get("/v1/_test/crash")

        body = _problem(r, 500, "internal_error")
        assert "secret internals" not in r.text
        assert any(e.get("error_id") == body["error_id"] and e["event"] == "unhandled_error" for e in logs)

    async def test_request_id_is_echoed_and_in_problem(self, strict_client: httpx.AsyncClient) -> None:
        r = await strict_client.get("/v1/nothing-here", headers={"X-Request-ID": "req-42"})

        assert r.headers["x-request-id"] == "req-42"
        assert r.json()["request_id"] == "req-42"
