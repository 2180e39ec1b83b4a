"""CloudEvents binary mode out, binary and structured mode in."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from payment_service.outbox import envelope

AT = datetime(2026, 11, 26, 13, 51, 40, 123456, tzinfo=UTC)


class TestBinaryHeaders:
    def test_round_trip(self) -> None:
        headers = envelope.binary_headers(
            id="e-1",
            source="payment-service",
            type="payment.succeeded",
            time=AT,
            dataversion=2,
            subject="pay-1",
            partitionkey="pay-1",
            correlationid="c-1",
            sequence=42,
        )

        event = envelope.decode(envelope.headers_to_dict(headers), b'{"amount_minor": 100}')

        assert (event.id, event.source, event.type, event.specversion) == (
            "e-1",
            "payment-service",
            "payment.succeeded",
            "1.0",
        )
        assert event.time == AT
        assert (event.subject, event.dataversion, event.correlationid) == ("pay-1", 2, "c-1")
        assert event.extensions == {"partitionkey": "pay-1", "sequence": "00000000000000000042"}
        assert event.data == {"amount_minor": 100}
        assert dict(headers)["ce_time"] == b"2026-11-26T13:51:40.123456Z"

    def test_optional_attributes_are_left_out(self) -> None:
        headers = dict(envelope.binary_headers(id="e", source="s", type="t", time=AT, dataversion=1))

        assert set(headers) == {
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_dataversion",
            "content-type",
        }


class TestDecode:
    def test_structured_mode(self) -> None:
        document = {
            "specversion": "1.0",
            "id": "x-1",
            "source": "//social",
            "type": "social.friend_added",
            "time": "2026-11-26T13:51:40Z",
            "data": {"a": 1},
            "traceparent": "00-abc",
        }

        event = envelope.decode({"content-type": "application/cloudevents+json; charset=utf-8"}, orjson.dumps(document))

        assert (event.id, event.source, event.type, event.data) == ("x-1", "//social", "social.friend_added", {"a": 1})
        assert event.extensions == {"traceparent": "00-abc"}

    @pytest.mark.parametrize(
        ("headers", "value", "message"),
        [
            ({}, b"{}", "not a CloudEvent"),
            ({"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s"}, b"{}", "type"),
            ({"ce_specversion": "0.3", "ce_id": "1", "ce_source": "s", "ce_type": "t"}, b"{}", "specversion"),
            ({"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t"}, b"not json", "not JSON"),
            ({"content-type": "application/cloudevents+json"}, b"[1]", "not a JSON object"),
            (
                {"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_time": "yesterday"},
                b"",
                "RFC",
            ),
        ],
    )
    def test_unreadable_messages_raise(self, headers: dict[str, str], value: bytes, message: str) -> None:
        with pytest.raises(envelope.EnvelopeError, match=message):
            envelope.decode(headers, value)

    def test_empty_value_is_null_data(self) -> None:
        event = envelope.decode({"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t"}, None)

        assert event.data is None
