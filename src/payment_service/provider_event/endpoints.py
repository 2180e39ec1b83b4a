"""Provider webhooks: unauthenticated by bearer token, authenticated by the provider's own proof."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from payment_service.deps import Clock, Providers, Session
from payment_service.provider_event import service as provider_event_service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.api_route(
    "/{provider}",
    methods=["POST", "GET"],
    summary="Receive a provider notification",
    responses={
        200: {"description": "Stored (or a duplicate); the body is what the provider expects (T-Bank: OK)"},
        401: {"description": "webhook_signature_invalid"},
        404: {"description": "unknown_provider"},
    },
)
async def receive_webhook(
    provider: str, request: Request, session: Session, providers: Providers, clock: Clock
) -> Response:
    """Verify, store once, and answer at once; the worker applies the event (Sber calls with GET)."""
    event, _ = await provider_event_service.receive(
        session,
        provider=provider,
        body=await request.body(),
        headers=dict(request.headers),
        remote_addr=request.client.host if request.client else None,
        query=request.url.query,
        providers=providers,
        now=clock.now(),
    )
    return Response(content=event.ack_body, status_code=200, media_type="text/plain")
