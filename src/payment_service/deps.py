"""FastAPI dependencies as ``Annotated`` aliases: Session, Principal, Clock, scopes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal as PrincipalT
from payment_service.auth import bearer_token, decode_token
from payment_service.db import ChangeListener
from payment_service.kit.clock import Clock as ClockT
from payment_service.kit.idempotency import Claim
from payment_service.providers.registry import ProviderRegistry
from payment_service.resources import Resources as ResourcesT


def get_resources(request: Request) -> ResourcesT:
    """The app's resources (a plain function: endpoints may call it directly)."""
    resources: ResourcesT = request.app.state.resources
    return resources


# The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the
# thread pool, a thread hop per dependency per request (measured: ~20 % of a donation's CPU).


async def _resources_dependency(request: Request) -> ResourcesT:
    return get_resources(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session.

    Mutating ``/v1`` requests get the unit-of-work session opened by ``UnitOfWorkMiddleware``
    (it commits together with the idempotency record); other requests get a session of their own
    that is committed at the end (read-only in practice).
    """
    uow = getattr(request.state, "uow_session", None)
    if uow is not None:
        yield uow
        return
    async with get_resources(request).sessionmaker() as session:
        yield session
        await session.commit()


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a read-only endpoint, in autocommit: one round trip per statement, no BEGIN
    or COMMIT (under READ COMMITTED every statement takes its own snapshot anyway). Never write
    through it: each statement would commit on its own."""
    resources = get_resources(request)
    maker = resources.read_sessionmaker or resources.sessionmaker
    async with maker() as session:
        yield session


async def get_listener(request: Request) -> ChangeListener | None:
    return get_resources(request).listener


async def get_park(request: Request) -> Callable[[], AbstractAsyncContextManager[object]]:
    """The in-flight limit's parking for a long-poll's wait (``middleware.PARK_STATE``), if any."""
    park: Callable[[], AbstractAsyncContextManager[object]] | None = getattr(request.state, "park_in_flight", None)
    return park or contextlib.nullcontext


@contextlib.asynccontextmanager
async def client_gone(request: Request) -> AsyncIterator[asyncio.Future[None]]:
    """A future that completes when the client disconnects, for a handler that waits long (a
    long-poll): uvicorn does not cancel a handler whose client went away, so without this the
    handler would hold its waiter until its own deadline. The request's body is read and dropped
    on the way (use it only where the handler reads none)."""

    async def until_disconnect() -> None:
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        except Exception:  # e.g. a body over the limit: not a disconnect, so nothing is known
            await asyncio.get_running_loop().create_future()  # until cancelled with the request

    watch = asyncio.get_running_loop().create_task(until_disconnect())
    try:
        yield watch
    finally:
        watch.cancel()


async def get_principal(request: Request) -> PrincipalT:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, PrincipalT):
        return cached
    principal = decode_token(bearer_token(request.headers.get("authorization")), get_resources(request).settings.auth)
    request.state.principal = principal
    return principal


async def get_clock(request: Request) -> ClockT:
    return get_resources(request).clock


async def get_providers(request: Request) -> ProviderRegistry:
    registry = get_resources(request).providers
    if registry is None:
        raise RuntimeError("provider registry was not started (Resources.start_providers)")
    return registry


async def get_idempotency_claim(request: Request) -> Claim | None:
    claim = getattr(request.state, "idempotency_claim", None)
    return claim if isinstance(claim, Claim) else None


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, PrincipalT]]:
    """Dependency factory: the caller must be authenticated and hold ``scope``."""

    async def dependency(principal: Annotated[PrincipalT, Depends(get_principal)]) -> PrincipalT:
        principal.require(scope)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


Session = Annotated[AsyncSession, Depends(get_session)]
ReadSession = Annotated[AsyncSession, Depends(get_read_session)]
Principal = Annotated[PrincipalT, Depends(get_principal)]
Clock = Annotated[ClockT, Depends(get_clock)]
Resources = Annotated[ResourcesT, Depends(_resources_dependency)]
Providers = Annotated[ProviderRegistry, Depends(get_providers)]
Listener = Annotated[ChangeListener | None, Depends(get_listener)]
Park = Annotated[Callable[[], AbstractAsyncContextManager[object]], Depends(get_park)]
IdempotencyClaim = Annotated[Claim | None, Depends(get_idempotency_claim)]
