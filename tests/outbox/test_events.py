"""The event catalogue and the AsyncAPI document generated from it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from payment_service.outbox import asyncapi, events
from payment_service.outbox.events import DiagnosticPing, Event

ROOT = Path(__file__).resolve().parents[2]


class TestCatalogue:
    def test_subclasses_with_a_type_are_registered(self) -> None:
        assert events.get("system.diagnostic_ping") is DiagnosticPing
        assert events.get("system.diagnostic_ping", 1) is DiagnosticPing
        assert DiagnosticPing in events.catalogue()
        assert "payments.system" in events.topics()

    def test_versions_live_side_by_side_and_latest_wins(self) -> None:
        class V1(Event):
            type = "test.versioned"
            version = 1
            topic = "payments.test"
            a: int

        class V2(Event):
            type = "test.versioned"
            version = 2
            topic = "payments.test"
            a: int
            b: str

        try:
            assert events.get("test.versioned") is V2
            assert events.get("test.versioned", 1) is V1
        finally:
            events.unregister(V1)
            events.unregister(V2)

    def test_an_intermediate_class_without_type_is_not_registered(self) -> None:
        class Base(Event):
            topic: ClassVar[str] = "payments.test"

        assert Base not in events.catalogue()

    def test_a_duplicate_type_and_version_is_refused(self) -> None:
        with pytest.raises(TypeError, match="already defined"):

            class Again(Event):
                type = "system.diagnostic_ping"
                version = 1
                topic = "payments.system"

    def test_an_unknown_type_raises(self) -> None:
        with pytest.raises(events.UnknownEvent):
            events.get("nope.never")
        with pytest.raises(events.UnknownEvent):
            events.get("system.diagnostic_ping", 99)

    def test_payloads_refuse_unknown_fields(self) -> None:
        with pytest.raises(ValueError, match="extra"):
            DiagnosticPing.model_validate({"n": 1, "surprise": True})


class TestAsyncAPI:
    def test_committed_document_matches_the_catalogue(self) -> None:
        committed = (ROOT / "docs" / "asyncapi.yaml").read_text()

        assert committed == asyncapi.render(), (
            "docs/asyncapi.yaml is stale: run `python -m payment_service.outbox.asyncapi > docs/asyncapi.yaml`"
        )

    def test_every_event_has_a_channel_message_and_resolvable_payload(self) -> None:
        document = yaml.safe_load(asyncapi.render())

        assert document["asyncapi"] == "3.0.0"
        for cls in events.catalogue():
            message_id = f"{cls.type}.v{cls.version}"
            channel = document["channels"][cls.topic]
            assert channel["messages"][message_id] == {"$ref": f"#/components/messages/{message_id}"}
            message = document["components"]["messages"][message_id]
            schema_name = message["payload"]["$ref"].rsplit("/", 1)[1]
            assert schema_name in document["components"]["schemas"]
            assert message["headers"]["properties"]["ce_type"] == {"const": cls.type}
            assert document["operations"][f"publish.{cls.topic}"]["action"] == "send"
