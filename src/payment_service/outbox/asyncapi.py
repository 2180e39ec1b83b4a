"""AsyncAPI 3.0 document of the events this service publishes, generated from the catalogue.

    python -m payment_service.outbox.asyncapi > docs/asyncapi.yaml

A test checks that the committed ``docs/asyncapi.yaml`` equals :func:`render`'s output, so the
document cannot drift from ``outbox/events.py``.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from payment_service.outbox import envelope, events
from payment_service.outbox.service import SOURCE

DOCUMENT_VERSION = "1.0.0"
"""Version of the event contract; bump it when an event is added or gets a new version."""

_REF = "#/components/schemas/{model}"


def _message_id(cls: type[events.Event]) -> str:
    return f"{cls.type}.v{cls.version}"


def _doc(cls: type[events.Event]) -> tuple[str, str]:
    text = inspect.cleandoc(cls.__doc__ or cls.type)
    summary, _, rest = text.partition("\n\n")
    return " ".join(summary.split()), rest.strip()


def _headers_schema(cls: type[events.Event]) -> dict[str, Any]:
    """The Kafka headers of a binary-mode CloudEvent of this type."""
    string = {"type": "string"}
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_dataversion", "content-type"],
        "properties": {
            "ce_specversion": {"const": envelope.SPECVERSION},
            "ce_id": {**string, "format": "uuid", "description": "Event id; consumers deduplicate on (source, id)"},
            "ce_source": {"const": SOURCE},
            "ce_type": {"const": cls.type},
            "ce_time": {**string, "format": "date-time", "description": "When the event was recorded (RFC 3339)"},
            "ce_dataversion": {"const": str(cls.version), "description": "Payload schema version"},
            "ce_subject": {**string, "description": "Aggregate id (same as the Kafka key)"},
            "ce_partitionkey": {**string, "description": "Aggregate id (CloudEvents partitioning extension)"},
            "ce_correlationid": {**string, "description": "Correlation id of the request or job that caused it"},
            "ce_sequence": {
                **string,
                "pattern": "^[0-9]{20}$",
                "description": "Outbox order, zero-padded; increases per key in publication order",
            },
            "content-type": {"const": envelope.JSON_CONTENT_TYPE},
        },
    }


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a plain dict (stable order)."""
    catalogue = events.catalogue()
    names, definitions = models_json_schema([(cls, "serialization") for cls in catalogue], ref_template=_REF)
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    for cls in catalogue:  # the message carries the docstring; keep the schema itself lean
        schemas[names[(cls, "serialization")]["$ref"].rsplit("/", 1)[1]].pop("description", None)

    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cls in catalogue:
        message_id = _message_id(cls)
        summary, description = _doc(cls)
        message: dict[str, Any] = {
            "name": cls.type,
            "title": f"{cls.type} v{cls.version}",
            "summary": summary,
            "contentType": envelope.JSON_CONTENT_TYPE,
            "headers": _headers_schema(cls),
            "payload": names[(cls, "serialization")],
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "Aggregate id"},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        if description:
            message["description"] = description
        messages[message_id] = message
        channel = channels.setdefault(
            cls.topic,
            {
                "address": cls.topic,
                "description": "Logical topic; the Kafka topic is `kafka.topic_prefix` + this address.",
                "messages": {},
            },
        )
        channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}

    for topic, channel in channels.items():
        operations[f"publish.{topic}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"The relay publishes outbox events to {topic}",
            "messages": [{"$ref": f"#/channels/{topic}/messages/{m}"} for m in channel["messages"]],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Payment Service events",
            "version": DOCUMENT_VERSION,
            "description": (
                "Events published by the Payment Service through its transactional outbox. "
                "CloudEvents 1.0 in Kafka binary content mode: the context attributes are `ce_*` "
                "headers, the value is the JSON `data`, the key is the aggregate id. Delivery is at "
                "least once and in order per key; deduplicate on (`ce_source`, `ce_id`). See docs/events.md."
            ),
        },
        "defaultContentType": envelope.JSON_CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The platform's Kafka cluster (KAFKA_BOOTSTRAP_SERVERS)",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    header = "# Generated by `python -m payment_service.outbox.asyncapi` from outbox/events.py; do not edit.\n"
    body: str = yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, width=110)
    return header + body


if __name__ == "__main__":
    sys.stdout.write(render())
