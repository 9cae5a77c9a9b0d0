"""A small JSON Schema validator for what tool and structured-output schemas use.

Pure, no dependency. Covers types, enum/const, numeric bounds and ``multipleOf``, string lengths
and ``pattern``, array items/``prefixItems``/lengths/``uniqueItems``, object ``required`` /
``properties`` / ``additionalProperties`` / size, ``allOf`` / ``anyOf`` / ``oneOf`` / ``not``,
and local ``$ref`` / ``$defs``. Unknown keywords (``format`` among them) are accepted. Used by the
emulator (to generate and check values) and by the adapters (to validate structured output that
Claude's compatibility layer does not guarantee). Only `fits` and `schema_errors` are public.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["HARD_DEPTH", "bound", "deref", "fits", "num", "schema_errors"]

Schema = Any  # a JSON schema: a dict, or True / False
HARD_DEPTH = 40  # recursion bound for self-referencing schemas


def schema_errors(value: Any, schema: Schema, *, root: Schema | None = None) -> list[str]:
    """Where ``value`` breaks ``schema``, one line per problem (``$.a.b: ...``); [] if it fits."""
    return list(_errors(schema, value, schema if root is None else root, 0, "$"))


def fits(schema: Schema, value: Any, *, root: Schema | None = None) -> bool:
    """Whether ``value`` validates against ``schema`` (stops at the first problem)."""
    return next(_errors(schema, value, schema if root is None else root, 0, "$"), None) is None


def _resolve(ref: str, root: Schema) -> Schema:
    """The target of a local ``$ref`` (``#/$defs/Name``), or {} when it is not one."""
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def deref(schema: Schema, root: Schema) -> Schema:
    """``schema`` with a top-level ``$ref`` replaced by its target (siblings kept)."""
    for _ in range(HARD_DEPTH):
        if not isinstance(schema, dict) or "$ref" not in schema:
            return schema
        target = _resolve(schema["$ref"], root)
        if not isinstance(target, dict):
            return target
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings}
    return {}


def bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    """A numeric bound and whether it is exclusive (draft 4 flags and draft 6+ numbers)."""
    value = num(schema.get(inclusive))
    flag = schema.get(exclusive)
    if isinstance(flag, bool):  # draft 4: a flag on the inclusive bound
        return value, flag
    other = num(flag)
    if other is not None and (value is None or other >= value):
        return other, True
    return value, False


def num(value: Any) -> int | float | None:
    """``value`` when it is a JSON number (not a bool), else None."""
    return value if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_matches(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "integer":
        return _is_number(value) and float(value).is_integer()
    if kind == "number":
        return _is_number(value)
    return True


def _kind(value: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _type_matches(kind, value):
            return kind
    return type(value).__name__


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _ok(schema: Schema, value: Any, root: Schema, depth: int) -> bool:
    return next(_errors(schema, value, root, depth, "$"), None) is None


def _errors(schema: Schema, value: Any, root: Schema, depth: int, path: str) -> Iterator[str]:
    schema = deref(schema, root)
    if schema is True or schema is None:
        return
    if schema is False or not isinstance(schema, dict):
        yield f"{path}: no value is allowed here"
        return
    if depth > HARD_DEPTH:
        return
    nested = depth + 1
    declared = schema.get("type")
    if declared is not None:
        kinds = [str(k) for k in (declared if isinstance(declared, list) else [declared])]
        if not any(_type_matches(k, value) for k in kinds):
            yield f"{path}: expected {' or '.join(kinds)}, got {_kind(value)}"
            return
    if "const" in schema and not _equal(schema["const"], value):
        yield f"{path}: expected {schema['const']!r}, got {value!r}"
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_equal(e, value) for e in enum):
        yield f"{path}: {value!r} is not one of {enum!r}"
    for sub in schema.get("allOf") or ():
        yield from _errors(sub, value, root, nested, path)
    branches = schema.get("anyOf")
    if isinstance(branches, list) and not any(_ok(s, value, root, nested) for s in branches):
        yield f"{path}: matches none of the allowed shapes (anyOf)"
    branches = schema.get("oneOf")
    if isinstance(branches, list):
        matching = sum(_ok(s, value, root, nested) for s in branches)
        if matching != 1:
            yield f"{path}: matches {matching} of the oneOf shapes, not exactly one"
    if "not" in schema and _ok(schema["not"], value, root, nested):
        yield f"{path}: matches a shape it must not (not)"
    if _is_number(value):
        yield from _number_errors(schema, value, path)
    elif isinstance(value, str):
        yield from _string_errors(schema, value, path)
    elif isinstance(value, list):
        yield from _array_errors(schema, value, root, nested, path)
    elif isinstance(value, dict):
        yield from _object_errors(schema, value, root, nested, path)


def _number_errors(schema: dict[str, Any], value: float, path: str) -> Iterator[str]:
    low, low_open = bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = bound(schema, "maximum", "exclusiveMaximum")
    if low is not None and (value < low or (low_open and value == low)):
        yield f"{path}: {value!r} is below the {'exclusive ' if low_open else ''}minimum {low!r}"
    if high is not None and (value > high or (high_open and value == high)):
        yield f"{path}: {value!r} is above the {'exclusive ' if high_open else ''}maximum {high!r}"
    step = num(schema.get("multipleOf"))
    if step is not None and step > 0:
        if isinstance(step, float):
            quotient = value / step
            multiple = not math.isfinite(quotient) or int(quotient) == quotient
        else:
            multiple = not (value % step)
        if not multiple:
            yield f"{path}: {value!r} is not a multiple of {step!r}"


def _string_errors(schema: dict[str, Any], value: str, path: str) -> Iterator[str]:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        yield f"{path}: shorter than {low} characters"
    if isinstance(high, int) and len(value) > high:
        yield f"{path}: longer than {high} characters"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:  # a pattern Python cannot compile is not the value's fault
            matched = True
        if not matched:
            yield f"{path}: does not match the pattern {pattern!r}"


def _array_errors(
    schema: dict[str, Any], value: list[Any], root: Schema, depth: int, path: str
) -> Iterator[str]:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        yield f"{path}: fewer than {low} items"
    if isinstance(high, int) and len(value) > high:
        yield f"{path}: more than {high} items"
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):
        prefix, items = items, schema.get("additionalItems")
    start = 0
    if isinstance(prefix, list):
        start = len(prefix)
        for i, (sub, item) in enumerate(zip(prefix, value, strict=False)):
            yield from _errors(sub, item, root, depth, f"{path}[{i}]")
    if items is not None:
        for i in range(start, len(value)):
            yield from _errors(items, value[i], root, depth, f"{path}[{i}]")
    if schema.get("uniqueItems") is True:
        for i, a in enumerate(value):
            if any(_equal(a, b) for b in value[i + 1 :]):
                yield f"{path}: items are not unique"
                break


def _object_errors(
    schema: dict[str, Any], value: dict[str, Any], root: Schema, depth: int, path: str
) -> Iterator[str]:
    required = schema.get("required")
    if isinstance(required, list):
        for name in required:
            if name not in value:
                yield f"{path}: missing {name!r}"
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if isinstance(low, int) and len(value) < low:
        yield f"{path}: fewer than {low} properties"
    if isinstance(high, int) and len(value) > high:
        yield f"{path}: more than {high} properties"
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _errors(properties[key], item, root, depth, f"{path}.{key}")
        elif extra is False:
            yield f"{path}: unexpected property {key!r}"
        elif isinstance(extra, dict):
            yield from _errors(extra, item, root, depth, f"{path}.{key}")
