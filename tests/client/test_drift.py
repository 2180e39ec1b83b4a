"""The client's models against the server: OpenAPI, event catalogue, request events, enums, money.

The client package duplicates the wire shapes on purpose (it must not import the server). These
tests are what keeps the duplicate honest: change a response field, an event payload, an enum or
a default on the server and they fail, naming the model and field to update in
``src/payment_service/client/``.

Shapes are compared as JSON Schema "atoms" per field (``string``, ``integer``, ``uuid``,
``date-time``, ``null``, ``model:<title>``, ``array[...]`` ...; an enum is its base type, since the
client keeps statuses as plain strings): what the server sends must be accepted by the client
(response models, events), and what the client sends must be accepted by the server (request
models, request events).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from functools import cache
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from payment_service.client import events as client_events
from payment_service.client import models as client_models
from payment_service.client import rest
from payment_service.donation import schemas as donation_schemas
from payment_service.donation import tasks as donation_tasks
from payment_service.kit.money import CURRENCIES, Money
from payment_service.main import create_app
from payment_service.outbox import events as server_events
from payment_service.outbox import service as outbox_service
from payment_service.referral_payout import schemas as referral_schemas
from payment_service.referral_payout import tasks as referral_tasks

Direction = Literal["request", "response"]
Schema = dict[str, Any]


@cache
def openapi() -> Schema:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastAPI's duplicate operation id warning (webhooks GET/POST)
        return create_app().openapi()


def _components() -> dict[str, Schema]:
    schemas: dict[str, Schema] = openapi()["components"]["schemas"]
    return schemas


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _base_name(name: str) -> str:
    return re.sub(r"-(Input|Output)$", "", name)


def atoms(schema: Schema, defs: dict[str, Schema]) -> frozenset[str]:
    """The set of JSON shapes a field's schema admits (see the module docstring)."""
    if "$ref" in schema:
        target = defs[_ref_name(schema["$ref"])]
        if "enum" in target:
            return frozenset({str(target.get("type", "string"))})
        return frozenset({f"model:{_base_name(str(target.get('title', _ref_name(schema['$ref']))))}"})
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            out: frozenset[str] = frozenset()
            for part in schema[combinator]:
                out |= atoms(part, defs)
            return out
    kind = schema.get("type")
    if kind is None:
        return frozenset({"any"})
    if kind == "array":
        inner = ",".join(sorted(atoms(schema.get("items", {}), defs)))
        return frozenset({f"array[{inner}]"})
    if kind == "object":
        extra = schema.get("additionalProperties")
        values = [extra] if isinstance(extra, dict) else list(schema.get("patternProperties", {}).values())
        if values:
            inner_atoms: frozenset[str] = frozenset()
            for value in values:
                inner_atoms |= atoms(value, defs)
            return frozenset({"map[" + ",".join(sorted(inner_atoms)) + "]"})
        return frozenset({"object"})
    if kind == "string":
        fmt = schema.get("format")
        return frozenset({fmt if fmt in {"uuid", "date-time", "date"} else "string"})
    return frozenset({str(kind)})


def _model_refs(schema: Schema, defs: dict[str, Schema]) -> Iterator[str]:
    """Def names of the models a schema refers to (directly or inside unions/arrays/maps)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        if "enum" not in defs[name]:
            yield name
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            yield from _model_refs(part, defs)
    if isinstance(schema.get("items"), dict):
        yield from _model_refs(schema["items"], defs)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _model_refs(schema["additionalProperties"], defs)


def compare_objects(
    what: str,
    client: Schema,
    client_defs: dict[str, Schema],
    server: Schema,
    server_defs: dict[str, Schema],
    direction: Direction,
    *,
    client_only: frozenset[str] = frozenset(),
) -> list[str]:
    """Differences between a client and a server object schema (empty when compatible)."""
    problems: list[str] = []
    c_props: dict[str, Schema] = {k: v for k, v in client.get("properties", {}).items() if k not in client_only}
    s_props: dict[str, Schema] = server.get("properties", {})
    if missing := sorted(set(s_props) - set(c_props)):
        problems.append(f"{what}: the server has fields the client lacks: {missing}")
    if extra := sorted(set(c_props) - set(s_props)):
        problems.append(f"{what}: the client has fields the server does not: {extra}")
    for name in sorted(set(c_props) & set(s_props)):
        c_atoms, s_atoms = atoms(c_props[name], client_defs), atoms(s_props[name], server_defs)
        if direction == "response" and not s_atoms <= c_atoms:
            problems.append(f"{what}.{name}: server sends {sorted(s_atoms)}, client accepts {sorted(c_atoms)}")
        if direction == "request" and not c_atoms <= s_atoms:
            problems.append(f"{what}.{name}: client sends {sorted(c_atoms)}, server accepts {sorted(s_atoms)}")
        if direction == "request" and c_props[name].get("default") != s_props[name].get("default"):
            problems.append(
                f"{what}.{name}: default {c_props[name].get('default')!r} on the client, "
                f"{s_props[name].get('default')!r} on the server"
            )
    if direction == "request":
        c_req, s_req = set(client.get("required", [])), set(server.get("required", []))
        if c_req != s_req:
            problems.append(f"{what}: required fields differ: client {sorted(c_req)}, server {sorted(s_req)}")
    return problems


def _client_schema(model: type[BaseModel], direction: Direction) -> tuple[Schema, dict[str, Schema]]:
    schema = model.model_json_schema(mode="serialization" if direction == "request" else "validation")
    return schema, schema.get("$defs", {})


def _client_models_by_title() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for value in vars(client_models).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.model_config.get("title"):
            out[str(value.model_config["title"])] = value
    return out


def _server_component(title: str, direction: Direction) -> Schema:
    components = _components()
    for name in (f"{title}-Input" if direction == "request" else f"{title}-Output", title):
        if name in components:
            return components[name]
    raise AssertionError(f"the server's OpenAPI has no schema {title!r} (client model of that title)")


def compare_with_openapi(model: type[BaseModel], direction: Direction) -> list[str]:
    """Compare ``model`` and every model it refers to with the server's OpenAPI components."""
    by_title = _client_models_by_title()
    problems: list[str] = []
    todo = [str(model.model_config["title"])]
    seen: set[str] = set()
    while todo:
        title = todo.pop()
        if title in seen:
            continue
        seen.add(title)
        if title not in by_title:
            problems.append(f"no client model has title {title!r}")
            continue
        cls = by_title[title]
        c_schema, c_defs = _client_schema(cls, direction)
        s_schema = _server_component(title, direction)
        client_only: frozenset[str] = getattr(cls, "client_only_fields", frozenset())
        problems += compare_objects(
            f"{cls.__name__} ({title})", c_schema, c_defs, s_schema, _components(), direction, client_only=client_only
        )
        for prop in s_schema.get("properties", {}).values():
            for ref in _model_refs(prop, _components()):
                todo.append(_base_name(str(_components()[ref].get("title", ref))))
    return problems


# ── REST operations ──────────────────────────────────────────────────────────────────────────


def _operation_id(op: rest.Operation[Any]) -> str:
    return f"{op.method} {op.path}"


class TestOperations:
    @pytest.mark.parametrize("op", rest.OPERATIONS, ids=_operation_id)
    def test_each_client_operation_exists_with_the_same_body_answer_and_query(self, op: rest.Operation[Any]) -> None:
        paths = openapi()["paths"]

        assert op.path in paths, f"the server has no path {op.path}"
        server_op = paths[op.path].get(op.method.lower())
        assert server_op is not None, f"the server has no {op.method} {op.path}"
        body = server_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if op.body is None:
            assert body is None, f"{op.method} {op.path} takes a body on the server: {body}"
        else:
            assert body is not None, f"{op.method} {op.path} takes no JSON body on the server"
            assert "$ref" in body
            assert _base_name(_ref_name(body["$ref"])) == op.body.model_config["title"]
        assert str(op.status) in server_op["responses"], f"{op.method} {op.path} does not answer {op.status}"
        answer = server_op["responses"][str(op.status)]["content"]["application/json"]["schema"]
        assert _base_name(_ref_name(answer["$ref"])) == op.response.model_config["title"]
        server_query = {p["name"] for p in server_op.get("parameters", []) if p["in"] == "query"}
        assert set(op.query) == server_query

    def test_every_model_the_client_uses_matches_the_server_schema(self) -> None:
        problems: list[str] = []
        for op in rest.OPERATIONS:
            problems += compare_with_openapi(op.response, "response")
            if op.body is not None:
                problems += compare_with_openapi(op.body, "request")

        assert not problems, "client models drifted from the OpenAPI:\n" + "\n".join(sorted(set(problems)))

    def test_the_comparison_notices_a_drifted_model(self) -> None:
        class Drifted(client_models.ResponseModel):
            model_config = client_models.ConfigDict(title="CardOut")
            scheme: int
            last4: str
            brand: str

        class Strict(client_models.RequestModel):
            model_config = client_models.ConfigDict(title="PaymentCancel")
            reason: str

        c_schema, c_defs = _client_schema(Drifted, "response")
        found = compare_objects("Drifted", c_schema, c_defs, _components()["CardOut"], _components(), "response")
        r_schema, r_defs = _client_schema(Strict, "request")
        strict = compare_objects("Strict", r_schema, r_defs, _components()["PaymentCancel"], _components(), "request")

        assert any("fields the server does not: ['brand']" in p for p in found)
        assert any("Drifted.scheme: server sends ['string']" in p for p in found)
        assert any("required fields differ" in p for p in strict)


class TestEnums:
    @pytest.mark.parametrize("enum", client_models.ENUMS, ids=lambda e: e.__name__)
    def test_client_enum_lists_exactly_the_server_values(self, enum: type[Any]) -> None:
        server = _components().get(enum.__name__)

        assert server is not None, f"the server has no enum {enum.__name__}"
        assert "enum" in server
        assert {m.value for m in enum} == set(server["enum"])


# ── events ───────────────────────────────────────────────────────────────────────────────────


def _catalogue() -> list[type[server_events.Event]]:
    return [c for c in server_events.catalogue() if not c.type.startswith("test.")]


class TestEventCatalogue:
    def test_the_client_knows_every_event_the_server_publishes_and_no_other(self) -> None:
        server = {(c.type, c.version) for c in _catalogue()}
        client = {(c.type, c.version) for c in client_events.payload_classes()}

        assert server - client == set(), "add these events to src/payment_service/client/events.py"
        assert client - server == set(), "the server no longer publishes these events"

    @pytest.mark.parametrize("server_cls", _catalogue(), ids=lambda c: f"{c.type}.v{c.version}")
    def test_each_payload_model_accepts_what_the_server_sends(self, server_cls: type[server_events.Event]) -> None:
        client_cls = client_events.payload_class(server_cls.type, server_cls.version)
        assert client_cls is not None
        s_schema = server_cls.model_json_schema(mode="serialization")
        c_schema, c_defs = _client_schema(client_cls, "response")

        problems = compare_objects(server_cls.type, c_schema, c_defs, s_schema, s_schema.get("$defs", {}), "response")
        for name, sub in s_schema.get("$defs", {}).items():  # nested models (order.paid items)
            c_sub = c_defs.get(name)
            assert c_sub is not None, f"{server_cls.type}: the client has no nested model {name}"
            problems += compare_objects(f"{server_cls.type}/{name}", c_sub, c_defs, sub, s_schema["$defs"], "response")

        assert client_cls.topic == server_cls.topic
        assert not problems, "\n".join(problems)

    def test_the_source_is_the_server_s(self) -> None:
        assert client_events.SOURCE == outbox_service.SOURCE


class TestRequestEvents:
    @pytest.mark.parametrize(
        ("client_cls", "server_cls", "topic", "type_"),
        [
            (
                client_events.ReferralPayoutRequested,
                referral_schemas.ReferralPayoutRequested,
                referral_tasks.REQUEST_TOPIC,
                referral_tasks.REQUEST_TYPE,
            ),
            (
                client_events.DonationRequested,
                donation_schemas.DonationRequest,
                donation_tasks.REQUEST_TOPIC,
                donation_tasks.REQUEST_TYPE,
            ),
        ],
        ids=["referral_payout_requested", "donation_requested"],
    )
    def test_what_the_client_publishes_is_what_the_consumer_reads(
        self, client_cls: type[BaseModel], server_cls: type[BaseModel], topic: str, type_: str
    ) -> None:
        c_schema, c_defs = _client_schema(client_cls, "request")
        s_schema = server_cls.model_json_schema(mode="validation")

        problems = compare_objects(
            client_cls.__name__, c_schema, c_defs, s_schema, s_schema.get("$defs", {}), "request"
        )

        assert not problems, "\n".join(problems)
        assert (getattr(client_cls, "topic"), getattr(client_cls, "type")) == (topic, type_)  # noqa: B009


# ── money ────────────────────────────────────────────────────────────────────────────────────


class TestMoney:
    @pytest.mark.parametrize("currency", sorted(CURRENCIES))
    def test_currency_exponents_and_formatting_match_kit_money(self, currency: str) -> None:
        for amount in (0, 1, 5, 99, 100, 49_900, 1_000_001, -5, -12_345):
            expected = Money(amount, currency).to_decimal_string()

            value = client_models.MoneyValue.of_minor(amount, currency)

            assert (value.value, value.currency) == (expected, currency)
            assert value.minor == amount

    def test_floats_and_bools_are_refused(self) -> None:
        with pytest.raises(TypeError):
            client_models.MoneyValue.of_minor(4.99, "RUB")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client_models.MoneyValue.of_minor(True, "RUB")

    def test_more_decimals_than_the_currency_has_are_refused(self) -> None:
        with pytest.raises(ValueError, match="more decimals"):
            _ = client_models.MoneyValue(value="1.001", currency="RUB").minor
