"""``parse_event`` on messages made by the server's own outbox code, and ``build_event`` read by the
server's own envelope decoder.

Every event of the catalogue is emitted through ``outbox.service.emit`` (real Postgres) and turned
into its Kafka message by the relay's ``_message`` (``envelope.binary_headers``), exactly what goes
to the broker; the client must type each one and keep every CloudEvents attribute.
"""

from __future__ import annotations

import base64
import json
import types
import typing
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from payment_service.client import events as client_events
from payment_service.client.events import (
    DonationRequested,
    GenericEventData,
    InvalidEnvelope,
    OrderPaid,
    ReferralPayoutFailed,
    ReferralPayoutRequested,
    build_event,
    parse_event,
)
from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.donation.schemas import DonationRequest
from payment_service.logging import correlation_id_var
from payment_service.outbox import envelope
from payment_service.outbox import events as server_events
from payment_service.outbox.service import emit
from payment_service.referral_payout.schemas import ReferralPayoutRequested as ServerReferralPayoutRequested
from payment_service.resources import Resources
from tests.client.helpers import relay_messages

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _sample(annotation: Any, name: str) -> Any:
    """A value for a field of ``annotation`` (the first non-None member of a union)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in typing.get_args(annotation) if a is not type(None)), name)
    if origin is list:
        return [_sample(typing.get_args(annotation)[0], name)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample_payload(annotation)
    if annotation is uuid.UUID:
        return uuid.uuid4()
    if annotation is datetime:
        return AT
    if annotation is bool:
        return True
    if annotation is int:
        return 12_345
    if annotation is str:
        return f"{name}-значение"
    raise AssertionError(f"no sample for {annotation!r} ({name})")


def sample_payload(model: type[BaseModel]) -> Any:
    return model(**{name: _sample(f.annotation, name) for name, f in model.model_fields.items()})


class TestParseRealEnvelopes:
    async def test_every_catalogue_event_parses_to_its_typed_model_with_its_attributes(
        self, db: Resources, settings: Settings
    ) -> None:
        catalogue = [c for c in server_events.catalogue() if not c.type.startswith("test.")]
        emitted: dict[str, tuple[server_events.Event, str]] = {}
        token = correlation_id_var.set("corr-client-1")
        try:
            async with transaction(db.sessionmaker) as session:
                for cls in catalogue:
                    event = sample_payload(cls)
                    key = f"key-{cls.type}"
                    event_id = await emit(session, event, key=key)
                    emitted[str(event_id)] = (event, key)
        finally:
            correlation_id_var.reset(token)

        messages = await relay_messages(settings)

        assert len(messages) == len(catalogue)
        sequences: list[int] = []
        for _topic, kafka_key, value, headers in messages:
            received = parse_event(headers, value)
            event, key = emitted[received.id]
            assert received.known, received.data
            assert type(received.data) is client_events.payload_class(event.type, event.version)
            assert received.data.model_dump(mode="json") == json.loads(event.model_dump_json())
            assert (received.source, received.type, received.dataversion) == ("payment-service", event.type, 1)
            assert received.partitionkey == received.subject == key == (kafka_key or b"").decode()
            assert received.correlationid == "corr-client-1"
            assert received.time is not None
            assert received.time.tzinfo is not None
            assert received.sequence is not None
            sequences.append(received.sequence)
        assert sequences == sorted(sequences)

    async def test_a_known_payload_is_typed_down_to_nested_items_and_decimals_stay_integers(
        self, db: Resources, settings: Settings
    ) -> None:
        order = sample_payload(server_events.OrderPaid)
        async with transaction(db.sessionmaker) as session:
            await emit(session, order, key=str(order.order_id))

        ((_, _, value, headers),) = await relay_messages(settings)
        received = parse_event(headers, value)

        assert isinstance(received.data, OrderPaid)
        assert received.data.items[0].item_id == order.items[0].item_id
        assert received.data.total_minor == order.total_minor
        assert isinstance(received.data.total_minor, int)
        assert received.data.order_id == order.order_id


def _headers(type_: str = "referral_payout.failed", version: int | None = 1, **extra: str) -> list[tuple[str, bytes]]:
    """Binary-mode headers from the server's envelope code (``version=None``: no ce_dataversion)."""
    headers = envelope.binary_headers(
        id=str(uuid.uuid4()), source="payment-service", type=type_, time=AT, dataversion=version or 1
    )
    if version is None:
        headers = [(k, v) for k, v in headers if k != "ce_dataversion"]
    return headers + [(k, v.encode()) for k, v in extra.items()]


ANSWER = {
    "request_id": "req-1",
    "user_id": "user-1",
    "referral_id": "ref-1",
    "amount_minor": 15_000,
    "currency": "RUB",
    "method": "bank",
    "payout_id": None,
    "occurred_at": "2026-11-27T10:00:00Z",
    "reason_code": "payee_not_verified",
}


class TestUnknownAndBroken:
    def test_an_unknown_type_is_a_generic_event(self) -> None:
        received = parse_event(_headers("refund.teleported"), b'{"a": 1}')

        assert not received.known
        assert received.data == GenericEventData(
            type="refund.teleported", version=1, reason="unknown_type", raw={"a": 1}
        )

    def test_an_unknown_version_of_a_known_type_is_a_generic_event(self) -> None:
        received = parse_event(_headers(version=2), orjson.dumps({"request_id": "req-1", "new_shape": True}))

        assert isinstance(received.data, GenericEventData)
        assert (received.data.reason, received.data.version, received.dataversion) == ("unknown_version", 2, 2)

    def test_data_that_does_not_fit_the_model_is_a_generic_event_with_the_error(self) -> None:
        received = parse_event(_headers(), orjson.dumps({**ANSWER, "amount_minor": "lots"}))

        assert isinstance(received.data, GenericEventData)
        assert received.data.reason == "invalid_data"
        assert received.data.error is not None
        assert "amount_minor" in received.data.error
        assert received.data.raw["request_id"] == "req-1"

    def test_fields_added_by_a_newer_server_are_ignored_and_a_missing_version_is_1(self) -> None:
        received = parse_event(_headers(version=None), orjson.dumps({**ANSWER, "added_later": "x"}))

        assert isinstance(received.data, ReferralPayoutFailed)
        assert received.data.reason_code == "payee_not_verified"
        assert received.dataversion is None

    def test_extensions_are_kept(self) -> None:
        received = parse_event(_headers(ce_traceparent="00-abc-def-01"), orjson.dumps(ANSWER))

        assert received.extensions == {"traceparent": "00-abc-def-01"}

    @pytest.mark.parametrize(
        ("headers", "value", "match"),
        [
            ([("content-type", b"application/json")], b"{}", "no ce_specversion"),
            ([("ce_specversion", b"1.0"), ("ce_type", b"x.y"), ("ce_source", b"s")], b"{}", "id"),
            (_headers(), b"{not json", "not JSON"),
            ([("content-type", b"application/cloudevents+json")], b"[1, 2]", "not a JSON object"),
        ],
        ids=["not-cloudevent", "missing-id", "data-not-json", "structured-not-object"],
    )
    def test_a_message_that_is_no_cloudevent_raises(
        self, headers: list[tuple[str, bytes]], value: bytes, match: str
    ) -> None:
        with pytest.raises(InvalidEnvelope, match=match):
            parse_event(headers, value)


class TestModesAndHeaderShapes:
    def test_structured_mode_and_base64_data(self) -> None:
        document = {
            "specversion": "1.0",
            "id": "e-1",
            "source": "payment-service",
            "type": "referral_payout.failed",
            "dataversion": 1,
            "time": "2026-11-27T10:00:00Z",
            "data": ANSWER,
        }
        encoded = {**document, "data_base64": base64.b64encode(orjson.dumps(ANSWER)).decode()}
        del encoded["data"]
        structured = [("content-type", b"application/cloudevents+json; charset=utf-8")]

        plain = parse_event(structured, orjson.dumps(document))
        b64 = parse_event(structured, orjson.dumps(encoded))

        assert isinstance(plain.data, ReferralPayoutFailed)
        assert isinstance(b64.data, ReferralPayoutFailed)
        assert plain.data == b64.data
        assert plain.time == AT

    def test_headers_as_a_mapping_of_text_and_a_text_value(self) -> None:
        headers = {k.upper() if k == "ce_type" else k: v.decode() for k, v in _headers()}

        received = parse_event(headers, orjson.dumps(ANSWER).decode())

        assert isinstance(received.data, ReferralPayoutFailed)


class TestBuildEvent:
    def test_a_referral_payout_request_is_read_by_the_server_s_decoder_and_model(self) -> None:
        payload = ReferralPayoutRequested(
            user_id="user-1",
            amount_minor=150_00,
            currency="RUB",
            reason="друг пришёл по ссылке",
            referral_id="ref-1",
            method="internal_balance",
        )

        message = build_event(payload, source="social-service", time=AT, correlation_id="corr-9")
        decoded = envelope.decode(envelope.headers_to_dict(message.headers), message.value)
        data = ServerReferralPayoutRequested.model_validate(decoded.data)

        assert message.topic == "social.referral_payout_requests"
        assert message.key == message.event_id.encode()  # no request_id: the event id is the request id
        assert (decoded.id, decoded.source, decoded.type) == (
            message.event_id,
            "social-service",
            "social.referral_payout_requested",
        )
        assert (decoded.dataversion, decoded.time, decoded.correlationid) == (1, AT, "corr-9")
        assert data.request_id is None
        assert data.amount_minor == 150_00
        assert data.reason == "друг пришёл по ссылке"

    def test_a_donation_request_is_keyed_by_the_viewer(self) -> None:
        payload = DonationRequested(viewer_id="viewer-1", streamer_id="streamer-1", amount_minor=100_00, currency="RUB")

        message = build_event(payload, source="streaming-service", id="evt-1")
        decoded = envelope.decode(envelope.headers_to_dict(message.headers), message.value)

        assert (message.topic, message.key, message.event_id) == ("streaming.donation_requests", b"viewer-1", "evt-1")
        assert DonationRequest.model_validate(decoded.data).streamer_id == "streamer-1"
        assert decoded.data == {
            "viewer_id": "viewer-1",
            "streamer_id": "streamer-1",
            "amount_minor": 10000,
            "currency": "RUB",
        }

    def test_a_naive_time_is_refused(self) -> None:
        payload = DonationRequested(viewer_id="v", streamer_id="s", amount_minor=1, currency="RUB")

        with pytest.raises(ValueError, match="timezone-aware"):
            build_event(payload, source="streaming-service", time=datetime(2026, 1, 1))
