"""The playtime port: how long a user has played a game, as the platform reports it.

Refund rules need it (Steam-like: less than two hours played). The platform owns the number;
this service only asks. An answer that cannot be had is :class:`PlaytimeUnavailable` — callers
never guess a playtime (refund requests then go to review).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable


class PlaytimeUnavailable(Exception):
    """The platform could not tell (not configured, unreachable, timed out, or answered nonsense)."""


@runtime_checkable
class PlaytimePort(Protocol):
    async def playtime(self, *, user_id: str, game_id: str) -> timedelta:
        """Total time ``user_id`` has played ``game_id`` (zero if never launched).

        Raises PlaytimeUnavailable.
        """
        ...


class NoPlaytime:
    """The port when no platform is configured: every question is unanswerable."""

    async def playtime(self, *, user_id: str, game_id: str) -> timedelta:
        raise PlaytimeUnavailable("the playtime API is not configured (playtime.base_url)")
