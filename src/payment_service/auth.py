"""JWT bearer authentication for the three kinds of principal.

* ``user``    — a player or creator; ``sub`` is the platform user id. Scopes default to
  :data:`USER_SCOPES` when the token names none.
* ``service`` — an internal service (social, streaming, user, game-catalog); ``sub`` is the
  service name, scopes come from the token and are checked per endpoint.
* ``admin``   — a back-office operator; ``sub`` is the operator id, scopes from the token.

Every endpoint declares the scope it needs (``deps.require_scope``); object-level checks
(a user sees only their own payments) belong to the service layer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt

from payment_service.config import AuthSettings
from payment_service.errors import Forbidden, Unauthorized


class PrincipalKind(StrEnum):
    """Who is calling."""

    user = "user"
    """An end user (player, streamer, developer); ``sub`` is the user id."""
    service = "service"
    """An internal platform service with explicit scopes."""
    admin = "admin"
    """A back-office operator."""


USER_SCOPES = frozenset(
    {
        "payments:read",
        "payments:write",
        "wallets:read",
        "wallets:write",
        "refunds:read",
        "refunds:write",
        "orders:read",
        "orders:write",
        "donations:write",
    }
)

KNOWN_SERVICES = frozenset({"social", "streaming", "user", "game-catalog"})


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Bearer token is missing, malformed, expired or not signed by a trusted key"


class MissingScope(Forbidden):
    code = "insufficient_scope"
    title = "The token lacks the scope this operation needs"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    region: str | None = None
    """Store region of a user (ISO 3166-1 alpha-2, claim ``region``): decides the prices' currency."""

    @property
    def key(self) -> str:
        """Stable identity used to scope idempotency keys and audit lines."""
        return f"{self.kind}:{self.subject}"

    @property
    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.admin

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "*" in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise MissingScope(f"scope '{scope}' is required", required_scope=scope)


def _signing_key(settings: AuthSettings, *, private: bool) -> str:
    if settings.algorithm == "HS256":
        if settings.hs256_secret is None:
            raise RuntimeError("PAYMENT_AUTH__HS256_SECRET is not set")
        return settings.hs256_secret.get_secret_value()
    key = settings.rs256_private_key if private else settings.rs256_public_key
    if key is None:
        which = "PRIVATE" if private else "PUBLIC"
        raise RuntimeError(f"PAYMENT_AUTH__RS256_{which}_KEY is not set")
    return key.get_secret_value()


_VERIFIED: dict[tuple[str, str, str], tuple[Principal, float]] = {}
"""token, algorithm, key → (principal, usable until): a client sends the same token with every
request, and PyJWT's verification costs ~40 µs of CPU (a tenth of a cheap request)."""
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_CACHE_SECONDS = 60.0


def decode_token(token: str, settings: AuthSettings) -> Principal:
    """Verify signature, expiry, issuer and audience; build the principal. Raises InvalidToken.

    A token verified before is answered from a bounded in-process cache until the earlier of its
    expiry (plus leeway) and :data:`VERIFIED_CACHE_SECONDS` after its verification; the cache key
    includes the verification key, so a rotated key verifies afresh. Failures are never cached.
    """
    cache_key = (token, settings.algorithm, _signing_key(settings, private=False))
    now = time.time()
    cached = _VERIFIED.get(cache_key)
    if cached is not None:
        if now <= cached[1]:
            return cached[0]
        del _VERIFIED[cache_key]
    principal, expires = _verify(token, settings)
    if len(_VERIFIED) >= VERIFIED_CACHE_SIZE:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest entry (dicts keep insertion order)
    _VERIFIED[cache_key] = (principal, min(expires + settings.leeway_seconds, now + VERIFIED_CACHE_SECONDS))
    return principal


def _verify(token: str, settings: AuthSettings) -> tuple[Principal, float]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _signing_key(settings, private=False),
            algorithms=[settings.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    try:
        kind = PrincipalKind(claims.get("kind", "user"))
    except ValueError:
        raise InvalidToken("unknown principal kind") from None
    subject = str(claims["sub"])
    if not subject or len(subject) > 100:
        raise InvalidToken("bad subject")
    raw_scope = claims.get("scope", "")
    scopes = frozenset(raw_scope.split()) if isinstance(raw_scope, str) else frozenset()
    if kind is PrincipalKind.user and not scopes:
        scopes = USER_SCOPES
    if kind is PrincipalKind.user:
        scopes = scopes & USER_SCOPES  # a user token can never carry service or admin scopes
    if kind is PrincipalKind.service and subject not in KNOWN_SERVICES:
        raise InvalidToken(f"unknown service '{subject}'")
    region = claims.get("region")
    if region is not None and not (
        isinstance(region, str) and len(region) == 2 and region.isascii() and region.isupper()
    ):
        raise InvalidToken("region must be an ISO 3166-1 alpha-2 code")
    return Principal(kind=kind, subject=subject, scopes=scopes, region=region), float(claims["exp"])


def mint_token(
    settings: AuthSettings,
    *,
    kind: PrincipalKind,
    subject: str,
    scopes: list[str] | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
    region: str | None = None,
) -> str:
    """Mint a token (development, tests, and the ``payment-service token`` command)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "kind": str(kind),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if region is not None:
        claims["region"] = region
    return jwt.encode(claims, _signing_key(settings, private=True), algorithm=settings.algorithm)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("Authorization header is missing")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()
