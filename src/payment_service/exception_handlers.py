"""Exception handlers: render AppError, validation and HTTP errors as RFC 9457 problems.

An unexpected exception becomes a 500 whose ``error_id`` is also logged, never a stack trace.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from payment_service.errors import PROBLEM_CONTENT_TYPE, AppError, DatabaseBusy, problem_body

log = structlog.get_logger(__name__)


def problem_response(
    *, code: str, status: int, title: str, headers: dict[str, str] | None = None, **kw: Any
) -> Response:
    return Response(
        content=orjson.dumps(problem_body(code=code, status=status, title=title, **kw)),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    headers = {"Retry-After": str(exc.extra.pop("retry_after"))} if "retry_after" in exc.extra else None
    if exc.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return problem_response(
        code=exc.code,
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        request_id=_request_id(request),
        headers=headers,
        **exc.extra,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        errors.append(
            {
                "field": ".".join(p for p in loc if p not in {"body"}) or "body",
                "location": loc[0] if loc else "body",
                "type": err.get("type"),
                "message": err.get("msg"),
            }
        )
    code = "malformed_json" if any(e["type"] == "json_invalid" for e in errors) else "validation_failed"
    title = "Request body is not valid JSON" if code == "malformed_json" else "Request validation failed"
    return problem_response(
        code=code,
        status=422 if code == "validation_failed" else 400,
        title=title,
        detail=f"{len(errors)} invalid field(s)" if code == "validation_failed" else title,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=_jsonable(errors),
    )


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in {"Not Found"} else title
    return problem_response(
        code=code,
        status=exc.status_code,
        title=title,
        detail=detail,
        instance=request.url.path,
        request_id=_request_id(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    error_id = uuid.uuid4().hex
    log.exception("unhandled_error", error_id=error_id, path=request.url.path, exc_info=exc)
    return problem_response(
        code="internal_error",
        status=500,
        title="Internal server error",
        detail=f"Unexpected error; quote error id {error_id} to support",
        instance=request.url.path,
        request_id=_request_id(request),
        error_id=error_id,
    )


async def _pool_timeout(request: Request, exc: Exception) -> Response:
    """``sqlalchemy.exc.TimeoutError`` (pool exhausted) is rendered as :class:`DatabaseBusy`."""
    log.warning("database_pool_timeout", path=request.url.path)
    return await _app_error(request, DatabaseBusy())


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _pool_timeout)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
