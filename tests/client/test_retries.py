"""Retry and error rules of the client, as pure unit tests on a scripted transport (no server).

The same rules run against the real app in ``test_rest.py`` (idempotency_key_in_use held by a
real claim, 503 from the real load shedder); here the answers are scripted so every branch —
recovery after a 503, a Retry-After too long to wait, transport errors, non-problem bodies —
is covered exactly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from payment_service.client import (
    MoneyValue,
    PaymentServiceClient,
    PaymentServiceError,
    PaymentServiceUnavailable,
    ReferralPayoutCreate,
    RetryPolicy,
)

NOW = "2026-11-27T10:00:00Z"
ANSWER = {
    "request_id": "req-1",
    "status": "completed",
    "user_id": "user-1",
    "amount": {"value": "150.00", "currency": "RUB"},
    "reason": "friend joined",
    "referral_id": "ref-1",
    "method": "internal_balance",
    "failure_code": None,
    "payout_id": None,
    "payout_status": None,
    "created_at": NOW,
    "answered_at": NOW,
    "added_by_a_newer_server": {"ignored": True},
}
BODY = ReferralPayoutCreate(
    request_id="req-1",
    user_id="user-1",
    amount=MoneyValue.of_minor(150_00, "RUB"),
    reason="friend joined",
    referral_id="ref-1",
    method="internal_balance",
)


def problem(status: int, code: str, headers: dict[str, str] | None = None, **extra: object) -> httpx.Response:
    body = {"type": f"https://errors.payments.game/{code}", "title": code, "status": status, "detail": code}
    return httpx.Response(
        status,
        json={**body, "code": code, **extra},
        headers={"content-type": "application/problem+json", **(headers or {})},
    )


class Script:
    """A transport answering from a list and recording every request."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_client(script: Script, sleeps: Sleeps, **kw: object) -> PaymentServiceClient:
    tokens = iter(f"token-{n}" for n in range(100))
    return PaymentServiceClient(
        "http://payments.test/",
        token=lambda: next(tokens),
        transport=httpx.MockTransport(script),
        sleep=sleeps,
        **kw,  # type: ignore[arg-type]
    )


class TestRetries:
    async def test_a_503_with_retry_after_is_retried_with_the_same_key_and_bytes(self) -> None:
        script = Script(problem(503, "overloaded", {"Retry-After": "2"}), httpx.Response(201, json=ANSWER))
        sleeps = Sleeps()

        async with make_client(script, sleeps) as client:
            result = await client.request_referral_payout(BODY)

        first, second = script.requests
        assert sleeps.delays == [2.0]
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == result.idempotency_key
        uuid.UUID(result.idempotency_key)  # generated
        assert first.content == second.content
        assert json.loads(first.content) == BODY.to_body()
        assert (first.headers["authorization"], second.headers["authorization"]) == ("Bearer token-0", "Bearer token-1")
        assert str(first.url) == "http://payments.test/v1/referral-payouts"
        assert (result.status_code, result.attempts, result.replayed) == (201, 2, False)
        assert result.value.status == "completed"
        assert result.value.amount.minor == 150_00

    async def test_idempotency_key_in_use_is_retried_with_backoff_then_raised(self) -> None:
        script = Script(*(problem(409, "idempotency_key_in_use") for _ in range(3)))
        sleeps = Sleeps()

        async with make_client(script, sleeps, retry=RetryPolicy(max_attempts=3, backoff_initial=0.1)) as client:
            with pytest.raises(PaymentServiceError) as caught:
                await client.request_referral_payout(BODY, idempotency_key="my-key")

        assert len(script.requests) == 3
        assert len(sleeps.delays) == 2
        assert 0.05 <= sleeps.delays[0] <= 0.1
        assert 0.1 <= sleeps.delays[1] <= 0.2
        assert {r.headers["idempotency-key"] for r in script.requests} == {"my-key"}
        assert (caught.value.status, caught.value.code, caught.value.attempts) == (409, "idempotency_key_in_use", 3)
        assert caught.value.idempotency_key == "my-key"

    async def test_in_use_with_a_long_retry_after_is_raised_at_once_with_the_key(self) -> None:
        script = Script(problem(409, "idempotency_key_in_use", {"Retry-After": "75"}))
        sleeps = Sleeps()

        async with make_client(script, sleeps) as client:
            with pytest.raises(PaymentServiceError) as caught:
                await client.request_referral_payout(BODY, idempotency_key="slow-key")

        assert sleeps.delays == []
        assert (caught.value.retry_after, caught.value.idempotency_key) == (75.0, "slow-key")

    async def test_other_conflicts_and_a_503_without_retry_after_are_final(self) -> None:
        script = Script(
            problem(409, "referral_request_conflict"),
            problem(503, "no_provider_available"),
            problem(500, "internal_error"),
        )
        sleeps = Sleeps()

        async with make_client(script, sleeps) as client:
            codes = []
            for _ in range(3):
                with pytest.raises(PaymentServiceError) as caught:
                    await client.request_referral_payout(BODY)
                codes.append(caught.value.code)

        assert codes == ["referral_request_conflict", "no_provider_available", "internal_error"]
        assert sleeps.delays == []

    async def test_a_retry_after_beyond_the_cap_is_not_waited_for(self) -> None:
        script = Script(problem(503, "catalog_unavailable", {"Retry-After": "120"}))
        sleeps = Sleeps()

        async with make_client(script, sleeps, retry=RetryPolicy(max_retry_after=30)) as client:
            with pytest.raises(PaymentServiceError) as caught:
                await client.get_referral_payout("req-1")

        assert sleeps.delays == []
        assert caught.value.retry_after == 120.0

    async def test_a_retry_after_http_date_is_read(self) -> None:
        at = datetime.now(UTC).replace(microsecond=0)
        date = at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        script = Script(problem(429, "rate_limited", {"Retry-After": date}), httpx.Response(200, json=ANSWER))
        sleeps = Sleeps()

        async with make_client(script, sleeps) as client:
            await client.get_referral_payout("req-1")

        assert len(sleeps.delays) == 1
        assert 0 <= sleeps.delays[0] <= 1

    async def test_transport_errors_are_retried_then_reported_as_unavailable(self) -> None:
        script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(201, json=ANSWER))
        sleeps = Sleeps()

        async with make_client(script, sleeps) as client:
            result = await client.request_referral_payout(BODY, idempotency_key="k-1")
        failing = Script(*(httpx.ConnectError("refused") for _ in range(2)))
        async with make_client(failing, Sleeps(), retry=RetryPolicy(max_attempts=2)) as client:
            with pytest.raises(PaymentServiceUnavailable) as caught:
                await client.request_referral_payout(BODY, idempotency_key="k-2")

        assert (result.attempts, len(sleeps.delays)) == (3, 2)
        assert {r.headers["idempotency-key"] for r in script.requests} == {"k-1"}
        assert (caught.value.code, caught.value.idempotency_key, caught.value.attempts) == ("transport_error", "k-2", 2)
        assert isinstance(caught.value.__cause__, httpx.ConnectError)


class TestErrors:
    async def test_the_problem_and_its_extra_members_are_on_the_error(self) -> None:
        script = Script(
            problem(402, "insufficient_funds", shortfall={"value": "10.00", "currency": "RUB"}, request_id="r-9")
        )

        async with make_client(script, Sleeps()) as client:
            with pytest.raises(PaymentServiceError) as caught:
                await client.request_referral_payout(BODY)

        error = caught.value
        assert (error.status, error.code, error.request_id) == (402, "insufficient_funds", "r-9")
        assert error.extra == {"shortfall": {"value": "10.00", "currency": "RUB"}}
        assert error.problem.type == "https://errors.payments.game/insufficient_funds"
        assert "POST /v1/referral-payouts: 402 insufficient_funds" in str(error)

    async def test_a_body_that_is_not_a_problem_still_raises_with_its_status(self) -> None:
        script = Script(httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}))

        async with make_client(script, Sleeps()) as client:
            with pytest.raises(PaymentServiceError) as caught:
                await client.get_payment(uuid.uuid4())

        assert (caught.value.status, caught.value.code) == (502, "http_502")
        assert "Bad Gateway" in caught.value.detail


class TestRequests:
    async def test_async_token_correlation_id_query_and_path_quoting(self) -> None:
        script = Script(httpx.Response(200, json=ANSWER), httpx.Response(200, json={"items": [], "next_cursor": None}))

        async def token() -> str:
            return "async-token"

        async with PaymentServiceClient(
            "http://payments.test",
            token=token,
            transport=httpx.MockTransport(script),
            correlation_id=lambda: "corr-7",
        ) as client:
            await client.get_referral_payout("social:req/1")
            await client.list_payments(payer_id="user-1", status="succeeded", limit=5)

        get, listing = script.requests
        assert get.url.raw_path == b"/v1/referral-payouts/social%3Areq%2F1"
        assert get.headers["authorization"] == "Bearer async-token"
        assert get.headers["x-correlation-id"] == "corr-7"
        assert "idempotency-key" not in get.headers
        assert dict(listing.url.params) == {"payer_id": "user-1", "status": "succeeded", "limit": "5"}

    async def test_only_the_fields_set_are_sent(self) -> None:
        script = Script(
            lambda request: httpx.Response(
                200,
                json={
                    "id": str(uuid.uuid4()),
                    "status": "canceled",
                    "amount": {"value": "1.00", "currency": "RUB"},
                    "captured_amount": {"value": "0.00", "currency": "RUB"},
                    "refunded_amount": {"value": "0.00", "currency": "RUB"},
                    "method": "bank_card",
                    "capture_mode": "automatic",
                    "purpose": "order",
                    "description": "x",
                    "metadata": {},
                    "payer_id": "u",
                    "expires_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "attempts": [],
                },
            )
        )

        async with make_client(script, Sleeps()) as client:
            result = await client.cancel_payment(uuid.uuid4())

        assert script.requests[0].content == b"{}"
        assert result.value.status == "canceled"
