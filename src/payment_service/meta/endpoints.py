"""Who am I: the authenticated principal as the service sees it (also the no-DB benchmark path)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from payment_service.deps import Principal

router = APIRouter(prefix="/v1", tags=["meta"])


class WhoAmI(BaseModel):
    kind: str
    subject: str
    scopes: list[str]


@router.get("/me", response_model=WhoAmI, summary="The authenticated principal")
async def whoami(principal: Principal) -> WhoAmI:
    return WhoAmI(kind=str(principal.kind), subject=principal.subject, scopes=sorted(principal.scopes))
