"""CloudEvents 1.0 over Kafka: binary content mode (``ce_*`` headers, JSON data as the value).

We publish in *binary* mode (see ``docs/events.md``): each context attribute is a Kafka header
``ce_<name>`` with a UTF-8 value, ``content-type: application/json``, and the Kafka value is the
event's JSON ``data``. The Kafka key is the aggregate id (also in ``ce_partitionkey``).

We accept both modes when consuming: binary, and structured
(``content-type: application/cloudevents+json``, the whole event as one JSON object).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
HEADER_PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"

# Context attributes every event carries (besides the required id/source/type/specversion).
# ``dataversion``, ``correlationid``: our extensions; ``partitionkey``: the CloudEvents
# partitioning extension (= Kafka key); ``sequence``: the sequence extension (outbox order,
# zero-padded so that string order is numeric order).
_KNOWN = ("id", "source", "type", "specversion", "time", "subject", "dataversion", "correlationid")

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """The message is not a CloudEvent we can read (missing attributes, bad JSON)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents context attributes of one message and its decoded ``data``."""

    id: str
    source: str
    type: str
    data: Any
    specversion: str = SPECVERSION
    time: datetime | None = None
    subject: str | None = None
    dataversion: int | None = None
    correlationid: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sequence_value(seq: int) -> str:
    return f"{seq:020d}"


def binary_headers(
    *,
    id: str,
    source: str,
    type: str,
    time: datetime,
    dataversion: int,
    subject: str | None = None,
    partitionkey: str | None = None,
    correlationid: str | None = None,
    sequence: int | None = None,
) -> Headers:
    """Kafka headers of a binary-mode CloudEvent with JSON data."""
    pairs: list[tuple[str, str | None]] = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", id),
        ("ce_source", source),
        ("ce_type", type),
        ("ce_time", format_time(time)),
        ("ce_dataversion", str(dataversion)),
        ("ce_subject", subject),
        ("ce_partitionkey", partitionkey),
        ("ce_correlationid", correlationid),
        ("ce_sequence", sequence_value(sequence) if sequence is not None else None),
        (CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),
    ]
    return [(name, value.encode()) for name, value in pairs if value is not None]


def headers_to_dict(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Kafka headers as text (last one wins; undecodable bytes are replaced)."""
    return {name: (value or b"").decode("utf-8", "replace") for name, value in headers}


def dict_to_headers(headers: Mapping[str, str]) -> Headers:
    return [(name, value.encode()) for name, value in headers.items()]


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"ce time is not RFC 3339: {raw!r}") from None


def _parse_int(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise EnvelopeError(f"dataversion is not an integer: {raw!r}") from None


def _build(attrs: Mapping[str, Any], data: Any) -> Envelope:
    missing = [name for name in ("id", "source", "type", "specversion") if not attrs.get(name)]
    if missing:
        raise EnvelopeError(f"missing CloudEvents attribute(s): {', '.join(missing)}")
    specversion = str(attrs["specversion"])
    if not specversion.startswith("1."):
        raise EnvelopeError(f"unsupported CloudEvents specversion {specversion}")
    extensions = {str(k): str(v) for k, v in attrs.items() if k not in _KNOWN and k not in {"data", "data_base64"}}
    subject = attrs.get("subject")
    correlation = attrs.get("correlationid")
    return Envelope(
        id=str(attrs["id"]),
        source=str(attrs["source"]),
        type=str(attrs["type"]),
        data=data,
        specversion=specversion,
        time=_parse_time(attrs.get("time")),
        subject=str(subject) if subject else None,
        dataversion=_parse_int(attrs.get("dataversion")),
        correlationid=str(correlation) if correlation else None,
        extensions=extensions,
    )


def decode(headers: Mapping[str, str], value: bytes | None) -> Envelope:
    """Read a consumed Kafka message as a CloudEvent (binary or structured mode).

    Raises EnvelopeError when required attributes are missing or the data is not JSON.
    """
    content_type = headers.get(CONTENT_TYPE_HEADER, "")
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        try:
            document = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"structured CloudEvent is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise EnvelopeError("structured CloudEvent is not a JSON object")
        if "data_base64" in document:
            data: Any = base64.b64decode(document["data_base64"])
        else:
            data = document.get("data")
        return _build(document, data)
    if "ce_specversion" not in headers:
        raise EnvelopeError("not a CloudEvent: no ce_specversion header and not structured mode")
    attrs = {name[len(HEADER_PREFIX) :]: v for name, v in headers.items() if name.startswith(HEADER_PREFIX)}
    if value is None or value == b"":
        data = None
    else:
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"event data is not JSON: {exc}") from None
    return _build(attrs, data)
