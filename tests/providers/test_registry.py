from __future__ import annotations

import httpx
import pytest

from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderDeclined,
    ProviderDisabled,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderSignatureInvalid,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.ports import PaymentMethod, PaymentProvider
from payment_service.providers.registry import ProviderRegistry, RouteCandidate, route_candidates, should_fail_over
from payment_service.providers.settings import ProvidersSettings
from tests.providers.harness import CREDENTIALS

CARD = frozenset({PaymentMethod.bank_card})


def cand(name: str, priority: int, **kw: object) -> RouteCandidate:
    params: dict[str, object] = {
        "methods": CARD,
        "currencies": frozenset({"RUB"}),
        "min_amount_minor": 100,
        "max_amount_minor": 1_000_000,
    }
    params.update(kw)
    return RouteCandidate(name=name, priority=priority, **params)  # type: ignore[arg-type]


class TestRouteCandidates:
    def test_by_priority(self) -> None:
        got = route_candidates(
            [cand("b", 20), cand("a", 10), cand("c", 30)],
            method=PaymentMethod.bank_card,
            currency="RUB",
            amount_minor=500,
        )

        assert got == ["a", "b", "c"]

    @pytest.mark.parametrize(
        ("candidate", "reason"),
        [
            (cand("x", 1, methods=frozenset({PaymentMethod.sbp})), "method"),
            (cand("x", 1, currencies=frozenset({"USD"})), "currency"),
            (cand("x", 1, min_amount_minor=1_000), "below minimum"),
            (cand("x", 1, max_amount_minor=400), "above maximum"),
            (cand("x", 1, enabled=False), "disabled"),
        ],
    )
    def test_filters(self, candidate: RouteCandidate, reason: str) -> None:
        got = route_candidates([candidate], method=PaymentMethod.bank_card, currency="RUB", amount_minor=500)

        assert got == [], reason

    def test_unhealthy_go_last(self) -> None:
        got = route_candidates(
            [cand("a", 10, healthy=False), cand("b", 20)],
            method=PaymentMethod.bank_card,
            currency="RUB",
            amount_minor=500,
        )

        assert got == ["b", "a"]

    def test_exclude_already_tried(self) -> None:
        got = route_candidates(
            [cand("a", 10), cand("b", 20)],
            method=PaymentMethod.bank_card,
            currency="RUB",
            amount_minor=500,
            exclude=["a"],
        )

        assert got == ["b"]


@pytest.mark.parametrize(
    ("error", "fail_over"),
    [
        (ProviderUnavailable("connection refused"), True),
        (ProviderUnavailable("503 not processed"), True),
        (ProviderOperationNotSupported("no SBP"), True),
        (ProviderDisabled("QIWI"), True),
        (ProviderTimeout("read timeout"), False),
        (ProviderTimeout("HTTP 500: outcome unknown"), False),
        (ProviderDeclined("no money", decline_code="insufficient_funds"), False),
        (ProviderInvalidRequest("bad field"), False),
        (ProviderNotFound("no such payment"), False),
        (ProviderAmountMismatch("x", expected=(1, "RUB"), actual=(2, "RUB")), False),
        (ProviderSignatureInvalid("forged"), False),
        (ProviderError("something else"), False),
        (RuntimeError("bug"), False),
        (httpx.ReadTimeout("raw"), False),
    ],
)
def test_failover_rule(error: BaseException, fail_over: bool) -> None:
    assert should_fail_over(error) is fail_over


class TestRegistry:
    def test_builds_enabled_providers_with_credentials(self) -> None:
        registry = ProviderRegistry.build(ProvidersSettings(), CREDENTIALS)

        assert registry.names == ["mobile", "sber", "tbank", "yookassa"]
        assert isinstance(registry.resolve("tbank"), PaymentProvider)

    def test_provider_without_credentials_is_skipped(self) -> None:
        registry = ProviderRegistry.build(ProvidersSettings(), {"tbank": CREDENTIALS["tbank"]})

        assert registry.names == ["tbank"]
        with pytest.raises(ProviderInvalidRequest):
            registry.resolve("yookassa")

    def test_entry_marked_disabled_in_vault_is_skipped(self) -> None:
        registry = ProviderRegistry.build(ProvidersSettings(), {**CREDENTIALS, "sber": {"enabled": False}})

        assert "sber" not in registry.names

    def test_routes_by_settings(self) -> None:
        registry = ProviderRegistry.build(ProvidersSettings(), CREDENTIALS)

        assert registry.route(method=PaymentMethod.bank_card, currency="RUB", amount_minor=10_000) == [
            "yookassa",
            "tbank",
            "sber",
        ]
        assert registry.route(method=PaymentMethod.sbp, currency="RUB", amount_minor=10_000) == ["yookassa", "tbank"]
        assert registry.route(method=PaymentMethod.mobile, currency="RUB", amount_minor=10_000) == [
            "yookassa",
            "mobile",
        ]
        assert registry.route(method=PaymentMethod.bank_card, currency="USD", amount_minor=10_000) == []

    def test_open_breaker_moves_a_provider_last(self) -> None:
        registry = ProviderRegistry.build(ProvidersSettings(), CREDENTIALS)
        breaker = registry.breaker("yookassa")
        assert breaker is not None
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()

        assert registry.route(method=PaymentMethod.bank_card, currency="RUB", amount_minor=10_000)[-1] == "yookassa"

    async def test_qiwi_is_off_by_default_and_refuses_when_enabled(self) -> None:
        settings = ProvidersSettings()
        assert "qiwi" not in ProviderRegistry.build(settings, CREDENTIALS).names

        settings.qiwi.enabled = True
        registry = ProviderRegistry.build(settings, CREDENTIALS)

        assert "qiwi" in registry.names
        assert registry.route(method=PaymentMethod.bank_card, currency="RUB", amount_minor=10_000)[-1] != "qiwi"
        from payment_service.providers.ports import PaymentRef

        with pytest.raises(ProviderDisabled, match="revoked"):
            await registry.resolve("qiwi").get_status(PaymentRef("x"))
        await registry.aclose()
