"""What a worker job receives. Every module's ``tasks.py`` takes a :class:`JobContext`; the worker
(``worker.py``) builds one per run, with a session in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import Settings
from payment_service.providers.registry import ProviderRegistry
from payment_service.resources import Resources


@dataclass(frozen=True, slots=True)
class JobContext:
    """A job run: a session in its own transaction, the time the run started, settings, pools."""

    session: AsyncSession
    now: datetime
    settings: Settings
    resources: Resources

    @property
    def providers(self) -> ProviderRegistry:
        """The provider registry (started on first use when the worker has not started it yet)."""
        return self.resources.providers or self.resources.start_providers()
