"""The one list of routers.

Each module's router carries its full path prefix (``APIRouter(prefix="/v1/wallets")``) and is
included here without a prefix: the route then knows its whole path template, which the RED
metrics label requests with (FastAPI keeps an include-time prefix outside the route object).
"""

from __future__ import annotations

from fastapi import APIRouter

from payment_service.health.endpoints import router as health_router
from payment_service.inbox.endpoints import router as inbox_router
from payment_service.meta.endpoints import router as meta_router

v1 = APIRouter()
v1.include_router(meta_router)
v1.include_router(inbox_router)

root = APIRouter()
root.include_router(health_router)
