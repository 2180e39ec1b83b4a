"""Consumed events as handlers see them, and the admin API's dead-letter shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One CloudEvent read from Kafka, handed to a consumer handler."""

    id: str
    """CloudEvents ``id``; with ``source`` the inbox's deduplication key."""
    source: str
    type: str
    data: Any
    """The decoded JSON ``data``."""
    topic: str
    """Logical topic (without ``kafka.topic_prefix``)."""
    partition: int
    offset: int
    key: str | None
    time: datetime | None = None
    subject: str | None = None
    dataversion: int | None = None
    correlation_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """All Kafka headers as text (the CloudEvents attributes among them in binary mode)."""


class DeadLetterRead(BaseModel):
    """An event whose handler kept failing."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    topic: str = Field(description="Logical topic the event was consumed from")
    partition: int
    offset: int
    key: str | None
    source: str | None = Field(description="CloudEvents source (null when the message was not a CloudEvent)")
    event_id: str | None = Field(description="CloudEvents id (null when the message was not a CloudEvent)")
    type: str | None
    headers: dict[str, str] | None = Field(description="Original Kafka headers")
    value: Any = Field(description="Original JSON value (null when it was not JSON; see raw)")
    raw: str | None = Field(description="Original value as text when it was not JSON")
    error: str = Field(description="The last error, with its type")
    attempts: int = Field(description="How many times the handler ran")
    created_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None


class DeadLetterPage(BaseModel):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[DeadLetterRead]
    next_cursor: str | None = Field(description="Opaque; null on the last page")
