"""JWT bearer authentication and scopes."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from payment_service.auth import USER_SCOPES, InvalidToken, PrincipalKind, decode_token, mint_token
from payment_service.config import AuthSettings, Settings
from tests.conftest import Tokens


class TestWhoAmI:
    async def test_user_token(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await client.get("/v1/me", headers=tokens.headers(tokens.user("42")))

        assert r.status_code == 200
        assert r.json()["kind"] == "user"
        assert r.json()["subject"] == "42"
        assert set(r.json()["scopes"]) == USER_SCOPES

    async def test_no_token_is_401_problem(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/v1/me")

        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "invalid_token"

    async def test_mutating_request_without_token_is_401_before_anything_else(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/me", json={}, headers={"Idempotency-Key": "k"})

        assert r.status_code == 401
        assert r.json()["code"] == "invalid_token"

    async def test_expired_token(self, client: httpx.AsyncClient, settings: Settings) -> None:
        token = mint_token(settings.auth, kind=PrincipalKind.user, subject="1", now=time.time() - 7200)

        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

        assert r.status_code == 401

    async def test_foreign_signature(self, client: httpx.AsyncClient, settings: Settings) -> None:
        other = AuthSettings(hs256_secret=SecretStr("someone-else-entirely-0123456789"))
        token = mint_token(other, kind=PrincipalKind.admin, subject="mallory", scopes=["*"])

        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

        assert r.status_code == 401


class TestDecode:
    def test_user_token_cannot_grant_itself_admin_scopes(self, settings: Settings) -> None:
        token = mint_token(settings.auth, kind=PrincipalKind.user, subject="1", scopes=["admin:events", "wallets:read"])

        principal = decode_token(token, settings.auth)

        assert principal.scopes == frozenset({"wallets:read"})

    def test_unknown_service_is_rejected(self, settings: Settings) -> None:
        token = mint_token(settings.auth, kind=PrincipalKind.service, subject="billing-hacker", scopes=["x"])

        with pytest.raises(InvalidToken):
            decode_token(token, settings.auth)

    def test_service_scopes_are_explicit(self, settings: Settings) -> None:
        token = mint_token(
            settings.auth, kind=PrincipalKind.service, subject="social", scopes=["referral_payouts:write"]
        )

        principal = decode_token(token, settings.auth)

        assert principal.key == "service:social"
        assert principal.has("referral_payouts:write")
        assert not principal.has("payments:read")

    def test_none_algorithm_is_refused(self, settings: Settings) -> None:
        token = jwt.encode(
            {"sub": "1", "iss": settings.auth.issuer, "aud": settings.auth.audience, "exp": time.time() + 60},
            key=None,
            algorithm="none",
        )

        with pytest.raises(InvalidToken):
            decode_token(token, settings.auth)

    def test_rs256(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        auth = AuthSettings(algorithm="RS256", rs256_private_key=SecretStr(private), rs256_public_key=SecretStr(public))

        principal = decode_token(
            mint_token(auth, kind=PrincipalKind.admin, subject="ops", scopes=["admin:events"]), auth
        )

        assert principal.is_admin
        assert principal.has("admin:events")


class TestVerifiedTokenCache:
    """decode_token answers a token it verified before from memory: never past its expiry, never
    for another key, never for a token that failed."""

    def test_a_cached_token_stops_working_when_it_expires(self, settings: Settings) -> None:
        auth = settings.auth.model_copy(update={"leeway_seconds": 0})
        token = mint_token(auth, kind=PrincipalKind.user, subject="cache-1", ttl_seconds=1)
        assert decode_token(token, auth).subject == "cache-1"  # verified and cached
        time.sleep(2.1)  # exp has whole seconds: at most 2 s after minting it is past

        with pytest.raises(InvalidToken):
            decode_token(token, auth)

    def test_a_cached_token_is_verified_again_under_a_rotated_key(self, settings: Settings) -> None:
        token = mint_token(settings.auth, kind=PrincipalKind.user, subject="cache-2")
        assert decode_token(token, settings.auth).subject == "cache-2"
        rotated = settings.auth.model_copy(update={"hs256_secret": SecretStr("another-secret-" + "x" * 40)})

        with pytest.raises(InvalidToken):
            decode_token(token, rotated)

    def test_a_refused_token_is_refused_again(self, settings: Settings) -> None:
        token = mint_token(settings.auth, kind=PrincipalKind.service, subject="not-a-service", scopes=["x"])

        for _ in range(2):
            with pytest.raises(InvalidToken):
                decode_token(token, settings.auth)

    def test_the_cache_is_bounded(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        from payment_service import auth as auth_module

        monkeypatch.setattr(auth_module, "VERIFIED_CACHE_SIZE", 3)
        monkeypatch.setattr(auth_module, "_VERIFIED", {})
        for i in range(10):
            decode_token(mint_token(settings.auth, kind=PrincipalKind.user, subject=f"bounded-{i}"), settings.auth)

        assert len(auth_module._VERIFIED) == 3
