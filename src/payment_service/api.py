"""The one list of routers."""

from __future__ import annotations

from fastapi import APIRouter

from payment_service.health.endpoints import router as health_router
from payment_service.inbox.endpoints import router as inbox_router
from payment_service.meta.endpoints import router as meta_router

v1 = APIRouter(prefix="/v1")
v1.include_router(meta_router)
v1.include_router(inbox_router)

root = APIRouter()
root.include_router(health_router)
