"""The platform's playtime API, emulated: the real path plus a small control router.

GET  /v1/users/{user_id}/games/{game_id}/playtime   {"user_id", "game_id", "minutes_played"}; 0 if unknown
PUT  /_emulator/playtime/{user_id}/{game_id}         {"minutes": 95}: set what the platform reports
POST /_emulator/fail                                 {"count": 1}: the next N reads answer 503
POST /_emulator/reset                                forget playtimes, failures and requests
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class PlaytimeState:
    token: str | None = None
    """When set, reads must carry ``Authorization: Bearer <token>``."""
    minutes: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def set(self, user_id: str, game_id: str, minutes: int) -> None:
        self.minutes[(user_id, game_id)] = minutes

    def reset(self) -> None:
        self.minutes.clear()
        self.requests.clear()
        self.failures = 0


def create_app(state: PlaytimeState | None = None) -> FastAPI:
    st = state or PlaytimeState()
    app = FastAPI(title="Playtime API emulator")
    app.state.emulator = st

    @app.get("/v1/users/{user_id}/games/{game_id}/playtime")
    async def playtime(user_id: str, game_id: str, request: Request) -> JSONResponse:
        st.requests.append((user_id, game_id))
        if st.token is not None and request.headers.get("authorization") != f"Bearer {st.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if st.failures > 0:
            st.failures -= 1
            return JSONResponse({"error": "unavailable"}, status_code=503)
        minutes = st.minutes.get((user_id, game_id), 0)
        return JSONResponse({"user_id": user_id, "game_id": game_id, "minutes_played": minutes})

    @app.put("/_emulator/playtime/{user_id}/{game_id}")
    async def set_playtime(user_id: str, game_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        st.set(user_id, game_id, int(body["minutes"]))
        return {"ok": True}

    @app.post("/_emulator/fail")
    async def fail(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        st.failures = int(body.get("count", 1))
        return {"ok": True}

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, Any]:
        st.reset()
        return {"ok": True}

    return app
