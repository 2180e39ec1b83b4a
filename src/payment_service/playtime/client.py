"""HTTP client of the platform's playtime API (our contract with the platform team).

``GET {base_url}/v1/users/{user_id}/games/{game_id}/playtime`` with ``Authorization: Bearer
<token>`` answers ``200 {"user_id": "...", "game_id": "...", "minutes_played": 95}``; a user who
never launched the game has ``0``. Anything else (timeout, connection error, non-200, a body
that does not match) is :class:`~payment_service.playtime.ports.PlaytimeUnavailable`: one
attempt, a short timeout, because a refund request waits for it and falls back to review.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, Field, ValidationError

from payment_service.config import PlaytimeSettings
from payment_service.playtime.ports import PlaytimeUnavailable

log = structlog.get_logger(__name__)


class PlaytimeAnswer(BaseModel):
    user_id: str
    game_id: str
    minutes_played: int = Field(ge=0)


class HttpPlaytimeClient:
    """Implements :class:`~payment_service.playtime.ports.PlaytimePort` over HTTP."""

    def __init__(self, settings: PlaytimeSettings, *, http: httpx.AsyncClient) -> None:
        if not settings.base_url:
            raise ValueError("playtime.base_url is not set")
        self._base = settings.base_url.rstrip("/")
        self._timeout = settings.timeout_seconds
        self._headers = {"Accept": "application/json"}
        if settings.token is not None:
            self._headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        self._http = http

    async def playtime(self, *, user_id: str, game_id: str) -> timedelta:
        url = f"{self._base}/v1/users/{quote(user_id, safe='')}/games/{quote(game_id, safe='')}/playtime"
        try:
            response = await self._http.get(url, headers=self._headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            log.warning("playtime_unreachable", error=type(exc).__name__)
            raise PlaytimeUnavailable(f"playtime API unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            log.warning("playtime_error", status=response.status_code)
            raise PlaytimeUnavailable(f"playtime API answered {response.status_code}")
        try:
            answer = PlaytimeAnswer.model_validate_json(response.content)
        except ValidationError:
            raise PlaytimeUnavailable("playtime API answered an unexpected body") from None
        if answer.user_id != user_id or answer.game_id != game_id:
            raise PlaytimeUnavailable("playtime API answered for another user or game")
        return timedelta(minutes=answer.minutes_played)
