"""The one list of routers.

Each module's router carries its full path prefix (``APIRouter(prefix="/v1/wallets")``) and is
included here without a prefix: the route then knows its whole path template, which the RED
metrics label requests with (FastAPI keeps an include-time prefix outside the route object).
"""

from __future__ import annotations

from fastapi import APIRouter

from payment_service.donation.endpoints import router as donation_router
from payment_service.donation.ws import router as donation_ws_router
from payment_service.health.endpoints import router as health_router
from payment_service.inbox.endpoints import router as inbox_router
from payment_service.meta.endpoints import router as meta_router
from payment_service.order.endpoints import router as order_router
from payment_service.payment.endpoints import router as payment_router
from payment_service.payout.endpoints import admin_router as payout_admin_router
from payment_service.payout.endpoints import payee_router
from payment_service.payout.endpoints import router as payout_router
from payment_service.payout.endpoints import webhook_router as payout_webhook_router
from payment_service.provider_event.endpoints import router as provider_event_router
from payment_service.referral_payout.endpoints import admin_router as referral_admin_router
from payment_service.referral_payout.endpoints import router as referral_router
from payment_service.refund.endpoints import admin_router as refund_admin_router
from payment_service.refund.endpoints import router as refund_router
from payment_service.streamer_payout.endpoints import router as streamer_payout_router
from payment_service.wallet.endpoints import router as wallet_router

ROUTERS: tuple[APIRouter, ...] = (
    health_router,
    meta_router,
    payment_router,
    provider_event_router,
    inbox_router,
    wallet_router,
    donation_router,
    donation_ws_router,
    order_router,
    refund_router,
    refund_admin_router,
    payee_router,
    payout_router,
    payout_admin_router,
    payout_webhook_router,
    streamer_payout_router,
    referral_router,
    referral_admin_router,
)
