"""Kubernetes probes and Prometheus metrics (unauthenticated, never shed)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from payment_service.deps import Resources
from payment_service.health import service as health_service

router = APIRouter(tags=["operations"])


@router.get("/health/live", summary="Liveness: the process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: Postgres, Redis, broker and Vault answer",
    responses={503: {"description": "A dependency failed or the process is shutting down"}},
)
async def ready(request: Request, resources: Resources) -> Response:
    if getattr(request.app.state, "shutting_down", False):
        body: dict[str, Any] = {"status": "shutting_down", "checks": {}}
        return Response(orjson.dumps(body), status_code=503, media_type="application/json")
    results = await health_service.readiness(resources)
    failed = [r.name for r in results if not r.ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "failed": failed,
        "checks": {
            r.name: {"ok": r.ok, "latency_ms": round(r.latency_ms, 2), **({"error": r.error} if r.error else {})}
            for r in results
        },
    }
    return Response(orjson.dumps(body), status_code=503 if failed else 200, media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
