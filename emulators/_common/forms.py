"""application/x-www-form-urlencoded parsing without python-multipart (query string + body merged)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request


async def form_params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    body = (await request.body()).decode("utf-8", errors="replace")
    if body and "json" not in request.headers.get("content-type", ""):
        params.update(parse_qsl(body, keep_blank_values=True))
    return params
