"""The streamer's alert WebSocket: ``/v1/ws/donations``.

Protocol (JSON text frames):

* connect with the token as ``Authorization: Bearer <token>`` or ``?token=<token>`` — the
  streamer's JWT or the overlay token (``POST /v1/donations/overlay-token``); optional
  ``?streamer_id=`` must be the token's streamer; ``?last_event_id=N`` (or header
  ``Last-Event-ID``) resumes after alert N. Without it the stream starts at the newest alert.
* server → client: ``{"type": "hello", "streamer_id", "last_event_id", "heartbeat_seconds"}``, then
  ``{"type": "alert", "id": N, ...}`` (every alert exactly once, ``id`` increasing by one) and
  ``{"type": "ping", "last_event_id": N}`` every ``heartbeat_seconds``;
* client → server (optional): ``{"type": "ping"}`` → ``{"type": "pong"}``.
* A missing, invalid or rotated token, or a token for another stream, is closed with 1008 (policy
  violation) right after the handshake, with the error code as the reason.

The UnitOfWork middleware does not wrap WebSockets: every database read here is a short session
of its own, never held while waiting. Fan-out across API processes: :mod:`.alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from payment_service.donation import alerts
from payment_service.donation import service as donation_service
from payment_service.donation import tasks as donation_tasks
from payment_service.errors import AppError
from payment_service.resources import Resources

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/ws", tags=["donations"])

POLICY_VIOLATION = 1008
_CLIENT_GONE = "client_gone"
_PONG = "pong"
_REPLAY_PAGE = 200


def _hub(websocket: WebSocket, resources: Resources) -> alerts.AlertHub:
    state = websocket.app.state
    hub: alerts.AlertHub | None = getattr(state, "donation_alert_hub", None)
    if hub is None:  # no await between the check and the set: one hub per app
        hub = alerts.AlertHub(resources.redis)
        state.donation_alert_hub = hub
    return hub


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return websocket.query_params.get("token") or None


def _last_event_id(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("last_event_id") or websocket.headers.get("last-event-id")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError("last_event_id must be a non-negative integer")
    return int(raw)


class _Stream:
    """One connection: sends the alerts after ``last`` in order, each once."""

    def __init__(self, websocket: WebSocket, resources: Resources, streamer_id: str, last: int) -> None:
        self.ws = websocket
        self.resources = resources
        self.streamer_id = streamer_id
        self.last = last

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(orjson.dumps(payload).decode())

    async def catch_up(self) -> None:
        """Send every alert in the log after ``last`` (short sessions, page by page)."""
        while True:
            async with self.resources.sessionmaker() as session:
                frames = await donation_service.alerts_after(
                    session, streamer_id=self.streamer_id, after=self.last, limit=_REPLAY_PAGE
                )
            for item in frames:
                await self.send(item.model_dump(mode="json"))
                self.last = item.id
            if len(frames) < _REPLAY_PAGE:
                return

    async def live(self, item: dict[str, Any]) -> None:
        seq = item.get("id")
        if not isinstance(seq, int) or seq <= self.last or item.get("streamer_id") != self.streamer_id:
            return  # already sent (replayed from the log, or a second publication)
        if seq == self.last + 1:
            await self.send(item)
            self.last = seq
            return
        await self.catch_up()  # a gap: a pub/sub message was missed; the log has it


@router.websocket("/donations")
async def donation_alerts(websocket: WebSocket) -> None:
    """Live donation alerts of one streamer (see the module docstring for the protocol)."""
    resources: Resources = websocket.app.state.resources
    settings = resources.settings.donations
    await websocket.accept()
    try:
        requested_last = _last_event_id(websocket)
        async with resources.sessionmaker() as session:
            streamer_id = await donation_service.authenticate_stream(
                session,
                token=_token(websocket),
                auth=resources.settings.auth,
                streamer_id=websocket.query_params.get("streamer_id"),
            )
            newest = await donation_service.last_alert_id(session, streamer_id=streamer_id)
    except (AppError, ValueError) as exc:
        reason = exc.code if isinstance(exc, AppError) else "invalid_last_event_id"
        log.info("donation_ws_refused", reason=reason)
        await websocket.close(code=POLICY_VIOLATION, reason=reason)
        return

    donation_tasks.bind_publisher(resources)
    hub = _hub(websocket, resources)
    listener = await hub.subscribe(streamer_id)  # before reading the log: nothing falls in between
    stream = _Stream(websocket, resources, streamer_id, newest if requested_last is None else requested_last)
    reader = asyncio.create_task(_read_client(websocket, listener))
    log.info("donation_ws_connected", streamer_id=streamer_id, last_event_id=stream.last)
    loop = asyncio.get_running_loop()
    try:
        await stream.send(
            {
                "type": "hello",
                "streamer_id": streamer_id,
                "last_event_id": stream.last,
                "heartbeat_seconds": settings.ws_heartbeat_seconds,
            }
        )
        await stream.catch_up()
        next_catch_up = loop.time() + settings.ws_catch_up_seconds
        while True:
            try:
                item = await asyncio.wait_for(listener.get(), timeout=settings.ws_heartbeat_seconds)
            except TimeoutError:
                await stream.send({"type": "ping", "last_event_id": stream.last})
                if loop.time() >= next_catch_up:
                    await stream.catch_up()
                    next_catch_up = loop.time() + settings.ws_catch_up_seconds
                continue
            if item == _CLIENT_GONE:
                break
            if item == _PONG:
                await stream.send({"type": "pong", "last_event_id": stream.last})
            elif item == alerts.RESYNC:
                await stream.catch_up()
            elif isinstance(item, dict):
                await stream.live(item)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await hub.unsubscribe(listener)
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await websocket.close()
        log.info("donation_ws_closed", streamer_id=streamer_id, last_event_id=stream.last)


async def _read_client(websocket: WebSocket, listener: alerts.AlertListener) -> None:
    """Read what the client sends (pings) and notice when it leaves."""
    try:
        while True:
            raw = await websocket.receive_text()
            with contextlib.suppress(orjson.JSONDecodeError):
                message = orjson.loads(raw)
                if isinstance(message, dict) and message.get("type") == "ping":
                    listener.push(_PONG)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        listener.push(_CLIENT_GONE, force=True)
