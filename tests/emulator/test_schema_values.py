"""Tool arguments and JSON answers generated from a schema validate against it (pure, no server)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenhub_emulator.schema_values import PromptValues, fits, generate

VALIDATOR = jsonschema.Draft202012Validator
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    return bool(VALIDATOR(schema).is_valid(value))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 30},
        {"type": "string", "maxLength": 3},
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": 10, "maximum": 10},
        {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 6},
        {"type": "integer", "minimum": 7, "multipleOf": 5},
        {"type": "number", "minimum": 0.25, "multipleOf": 0.1},
        {"type": "number", "exclusiveMaximum": -3},
        {"type": "integer", "minimum": 0, "multipleOf": 0.5},
        {"enum": ["red", "green"]},
        {"const": {"fixed": True}},
        {"type": ["null", "boolean"]},
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        {"oneOf": [{"type": "string", "maxLength": 5}, {"type": "string", "minLength": 3}]},
        {
            "allOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]},
            ]
        },
        {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "minItems": 2},
        {"type": "object", "minProperties": 2, "additionalProperties": {"type": "number"}},
        {"type": "object", "required": ["undeclared"]},
        {
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "integer"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                        "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                    },
                    "required": ["value", "children", "parent"],
                }
            },
            "$ref": "#/$defs/Node",
        },
        {
            "definitions": {"Color": {"enum": ["red"]}},
            "type": "object",
            "properties": {"c": {"$ref": "#/definitions/Color"}},
            "required": ["c"],
        },
    ],
)
def test_generated_values_validate(schema: dict[str, Any]) -> None:
    value = generate(schema)
    assert _valid(value, schema), value
    assert fits(schema, value)


def test_prompt_values_are_used_where_they_fit() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "price": {"type": "number"},
            "mode": {"enum": ["walk", "drive"]},
            "note": {"type": "string"},
        },
        "required": ["city", "days", "price"],
    }
    values = PromptValues("Plan 500 days? Better 3 days in New York at 99.5 dollars; we drive")
    assert generate(schema, values=values) == {
        "city": "New York",
        "days": 3,
        "price": 500,
        "mode": "drive",
    }


def test_prompt_candidates_skip_sentence_openers_and_quotes_win() -> None:
    values = PromptValues('What is it? Tell me about "the Blue Lagoon" and Reykjavik.')
    accept_all = lambda _: True  # noqa: E731
    assert values.take_string(accept_all) == "the Blue Lagoon"
    assert values.take_string(accept_all) == "Reykjavik"
    assert values.take_string(accept_all) is None


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, 1.5),
        ({"type": "integer"}, True),
        ({"type": "number"}, "1"),
        ({"enum": [1, 2]}, True),
        ({"type": "string", "pattern": "^a+$"}, "ab"),
        ({"type": "object", "additionalProperties": False, "properties": {"a": {}}}, {"b": 1}),
        ({"type": "array", "uniqueItems": True}, [1, 1]),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1),
        ({"not": {"type": "null"}}, None),
        ({"type": "number", "multipleOf": 0.1}, 0.3),  # like jsonschema: float division
    ],
)
def test_fits_refuses_what_jsonschema_refuses(schema: dict[str, Any], value: Any) -> None:
    assert not _valid(value, schema)
    assert not fits(schema, value)


# -- property tests -----------------------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
_scalars = st.one_of(st.integers(-50, 50), st.text(max_size=5), st.booleans())


@st.composite
def _integer_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.none() | st.integers(-1000, 1000))
    step = draw(st.none() | st.integers(1, 7))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0) + draw(st.integers(2 + (step or 1) * 2, 500))
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def _number_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    low = draw(st.none() | st.floats(-1e6, 1e6))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0.0) + draw(st.floats(0.001, 1e6))
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


@st.composite
def _string_schema(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(0, 20))
    schema: dict[str, Any] = {"type": "string", "minLength": low}
    if draw(st.booleans()):
        schema["maxLength"] = low + draw(st.integers(0, 10))
    if draw(st.booleans()):
        schema["format"] = draw(st.sampled_from(["date", "email", "uuid", "uri"]))
    return schema


_leaves = st.one_of(
    _integer_schema(),
    _number_schema(),
    _string_schema(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(_scalars, min_size=1, max_size=4, unique_by=repr).map(lambda e: {"enum": e}),
    _scalars.map(lambda c: {"const": c}),
    st.just({}),
    st.just({"$ref": "#/$defs/Shared"}),
)
# What "#/$defs/Shared" names: a plain schema, or a linked list that refers to itself.
_shared = st.one_of(
    _integer_schema(),
    _string_schema(),
    st.just(
        {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "next": {"anyOf": [{"$ref": "#/$defs/Shared"}, {"type": "null"}]},
            },
            "required": ["value", "next"],
        }
    ),
)


@st.composite
def _object_schema(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    properties = draw(st.dictionaries(_names, children, max_size=4))
    required = [k for k in properties if draw(st.booleans())]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


@st.composite
def _array_schema(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    low = draw(st.integers(0, 3))
    schema: dict[str, Any] = {"type": "array", "items": draw(children), "minItems": low}
    if draw(st.booleans()):
        schema["maxItems"] = low + draw(st.integers(0, 2))
    return schema


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        _object_schema(children),
        _array_schema(children),
        st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}),
    )


schemas = st.builds(
    lambda body, shared: {**body, "$defs": {"Shared": shared}},
    st.recursive(_leaves, _extend, max_leaves=12),
    _shared,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.floats(-1e3, 1e3) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(schemas)
def test_property_generated_values_validate(schema: dict[str, Any]) -> None:
    value = generate(schema)
    assert _valid(value, schema), (schema, value)


@FAST
@given(schemas, st.text(max_size=80))
def test_property_prompt_values_still_validate(schema: dict[str, Any], prompt: str) -> None:
    value = generate(schema, values=PromptValues(prompt))
    assert _valid(value, schema), (schema, prompt, value)


@FAST
@given(schemas, json_values)
def test_property_fits_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    stripped = _without_formats(schema)
    assert fits(stripped, value) == _valid(value, stripped)


def _without_formats(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_formats(v) for k, v in schema.items() if k != "format"}
    if isinstance(schema, list):
        return [_without_formats(v) for v in schema]
    return schema
