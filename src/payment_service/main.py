"""create_app(): middleware, exception handlers, lifespan, routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from payment_service import __version__, metrics
from payment_service.api import ROUTERS
from payment_service.config import Settings, get_settings
from payment_service.donation import endpoints as donation_endpoints
from payment_service.exception_handlers import install_handlers
from payment_service.logging import configure_logging
from payment_service.middleware import (
    WEBHOOK_PREFIX,
    BodyLimitMiddleware,
    InFlightLimitMiddleware,
    RequestContextMiddleware,
    UnitOfWorkMiddleware,
)
from payment_service.providers import loop_lag
from payment_service.resources import Resources
from payment_service.vault import load_provider_credentials

log = structlog.get_logger(__name__)

DESCRIPTION = """
Payment Service of the game platform: payments through Russian providers, wallets, a
double-entry ledger, refunds, donations and payouts.

* Amounts are integer minor units on the wire of providers and decimal strings in this API.
* Every mutating `POST` needs an `Idempotency-Key` header (1-255 printable ASCII characters),
  scoped to the caller. Same key + same request replays the stored response; same key + a
  different request is `422 idempotency_key_reused`; a concurrent duplicate is
  `409 idempotency_key_in_use`.
* Errors are RFC 9457 `application/problem+json` documents with a stable `code`.
"""


def create_app(settings: Settings | None = None, resources: Resources | None = None) -> FastAPI:
    """Build the ASGI app. Tests pass ``resources`` to share pools and override the clock."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        res = resources or Resources.build(settings, application_name="payment-service-api")
        if owned:
            res.provider_credentials = await load_provider_credentials(settings, res.http)
            res.start_providers()
        loop_lag.monitor()  # payment_event_loop_lag_seconds from the start, not from the first provider call
        metrics.watch_gc()
        if owned:  # a real process (tests share theirs): start-up's objects leave the collector's work
            metrics.freeze_startup_objects()
        app.state.resources = res
        app.state.shutting_down = False
        log.info("api_started", env=str(settings.env), version=__version__)
        try:
            yield
        finally:
            app.state.shutting_down = True
            if owned:
                await res.close()
            log.info("api_stopped")

    app = FastAPI(
        title="Payment Service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    if resources is not None:
        app.state.resources = resources
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    # Added innermost first: UnitOfWork runs inside BodyLimit inside InFlight inside RequestContext.
    app.add_middleware(
        UnitOfWorkMiddleware,
        sessionmaker=lambda: app.state.resources.sessionmaker,
        settings=settings,
        clock=lambda: app.state.resources.clock,
        exempt_prefixes=(WEBHOOK_PREFIX,),
        engine=lambda: app.state.resources.engine,
        fast_paths={
            ("POST", "/v1/donations"): lambda request: donation_endpoints.create_donation_at_once(
                request, app.state.resources
            ),
        },
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.http.max_body_bytes)
    app.add_middleware(
        InFlightLimitMiddleware,
        limit=settings.http.max_in_flight,
        webhook_limit=settings.http.max_webhooks_in_flight,
        new_work_limit=settings.http.max_new_work_in_flight,
        max_retry_after_seconds=settings.http.max_retry_after_seconds,
    )
    app.add_middleware(RequestContextMiddleware)
    return app


def app_factory() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
