"""Admin API for consumed events that ended in the dead-letter queue (scope ``admin:events``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from payment_service.auth import Principal
from payment_service.deps import Clock, Session, require_scope
from payment_service.inbox import service as inbox_service
from payment_service.inbox.schemas import DeadLetterPage, DeadLetterRead

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["events"])

AdminEvents = Annotated[Principal, Depends(require_scope("admin:events"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "The token lacks the admin:events scope"},
}


@router.get(
    "",
    response_model=DeadLetterPage,
    summary="List dead letters, newest first",
    responses={**_ERRORS, 400: {"description": "invalid_cursor"}},
)
async def list_dead_letters(
    session: Session,
    _principal: AdminEvents,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    topic: Annotated[str | None, Query(max_length=200, description="Only this logical topic")] = None,
    replayed: Annotated[bool | None, Query(description="Only replayed (true) or not yet replayed (false)")] = None,
) -> DeadLetterPage:
    return await inbox_service.list_dead_letters(session, limit=limit, cursor=cursor, topic=topic, replayed=replayed)


@router.get(
    "/{dead_letter_id}",
    response_model=DeadLetterRead,
    summary="One dead letter",
    responses={**_ERRORS, 404: {"description": "dead_letter_not_found"}},
)
async def get_dead_letter(session: Session, _principal: AdminEvents, dead_letter_id: uuid.UUID) -> DeadLetterRead:
    return DeadLetterRead.model_validate(await inbox_service.get_dead_letter(session, dead_letter_id))


@router.post(
    "/{dead_letter_id}/replay",
    response_model=DeadLetterRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Re-publish the original event to its topic",
    description=(
        "Queues the original message (same CloudEvents id and headers) for publication to its topic "
        "through the outbox and marks the dead letter replayed. Needs an Idempotency-Key."
    ),
    responses={
        **_ERRORS,
        404: {"description": "dead_letter_not_found"},
        409: {"description": "dead_letter_already_replayed or dead_letter_not_replayable"},
    },
)
async def replay_dead_letter(
    session: Session, principal: AdminEvents, clock: Clock, dead_letter_id: uuid.UUID
) -> DeadLetterRead:
    item = await inbox_service.replay(session, dead_letter_id, now=clock.now(), by=principal.key)
    return DeadLetterRead.model_validate(item)
