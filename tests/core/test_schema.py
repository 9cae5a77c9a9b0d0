"""The core's JSON Schema validator: its verdicts agree with jsonschema, its messages say where."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tokenhub_core.schema import fits, schema_errors

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "pet": {"$ref": "#/$defs/Pet"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
    "$defs": {"Pet": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["kind"]}]}},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "Ann", "age": 31}, []),
        ({"name": "Ann"}, ["$: missing 'age'"]),
        ({"name": "Ann", "age": "31"}, ["$.age: expected integer, got string"]),
        ({"name": "Ann", "age": -1}, ["$.age: -1 is below the minimum 0"]),
        ({"name": "", "age": 1}, ["$.name: shorter than 1 characters"]),
        ({"name": "A", "age": 1, "x": 1}, ["$: unexpected property 'x'"]),
        ({"name": "A", "age": 1, "pet": {}}, ["$.pet: matches none of the allowed shapes (anyOf)"]),
        ({"name": "A", "age": 1, "tags": ["a", "c"]}, ["$.tags[1]: 'c' is not one of ['a', 'b']"]),
        ({"name": "A", "age": 1, "tags": ["a", "a"]}, ["$.tags: items are not unique"]),
        ([], ["$: expected object, got array"]),
    ],
)
def test_errors_say_where_and_agree_with_jsonschema(value: Any, expected: list[str]) -> None:
    assert schema_errors(value, PERSON) == expected
    assert fits(PERSON, value) is (not expected)
    assert jsonschema.Draft202012Validator(PERSON).is_valid(value) is (not expected)


def test_booleans_are_not_numbers_and_true_false_schemas() -> None:
    assert not fits({"type": "integer"}, True)
    assert fits({"type": "number"}, 2.0) and fits({"type": "integer"}, 2.0)
    assert fits(True, object()) and not fits(False, 1)
    assert schema_errors(1, {"oneOf": [{"type": "integer"}, {"type": "number"}]}) == [
        "$: matches 2 of the oneOf shapes, not exactly one"
    ]
