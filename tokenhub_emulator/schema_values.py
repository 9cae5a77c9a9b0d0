"""Values for a JSON schema: taken from the prompt where they fit, otherwise generated.

Pure and deterministic. `generate` covers the JSON Schema subset that tool and structured-output
schemas use (types, enum/const, bounds, lengths, formats, nested objects, arrays, ``$ref`` /
``$defs``, ``anyOf`` / ``oneOf`` / ``allOf``), checking prompt candidates and ``oneOf`` branches
with the core's validator (`tokenhub_core.schema.fits`, re-exported here). The schema walking
helpers below (``$ref`` resolution, numeric bounds) are the emulator's own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from tokenhub_core.schema import HARD_DEPTH, bound, deref, fits, num
from tokenhub_emulator.meaning import (
    FieldKind,
    field_kind,
    field_words,
    places,
    proper_nouns,
    time_phrases,
)

Schema = Any  # a JSON schema: a dict, or True / False

__all__ = ["PromptValues", "fits", "generate", "quoted_strings"]

_MAX_DEPTH = 6  # beyond it, only what is required is generated (recursive schemas end)

_FORMAT_VALUES: dict[str, str] = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T12:00:00Z",
    "time": "12:00:00",
    "email": "emulator@example.com",
    "uri": "https://example.com/emulator",
    "url": "https://example.com/emulator",
    "uuid": "00000000-0000-4000-8000-000000000001",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}
_FORMAT_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "date-time": re.compile(
        r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$"
    ),
    "time": re.compile(r"^\d{2}:\d{2}(:\d{2})?$"),
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    "uri": re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$"),
    "url": re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$"),
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"),
}

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")
_QUOTED = re.compile(
    r"\"([^\"\n]{1,200})\"|(?<!\w)'([^'\n]{1,200})'(?!\w)|`([^`\n]{1,200})`|“([^”\n]{1,200})”"
)
_CAPITALIZED = re.compile(r"\b[A-Z][\w'’-]*(?:(?:\s+|,\s*)[A-Z][\w'’-]*)*")
_WORD = re.compile(r"[\w'-]+")
# Capitalized only because they open a sentence or address the assistant, not because they name
# something: dropped from the front of a capitalized phrase.
_STARTERS_WORDS = (
    "What How Who When Where Why Which Whose Please Use Using Call Can Could Would Will Should "
    "Tell Get Find Give Show Make Let Run Invoke Is Are Do Does Did I I'm It This That These "
    "Those My The A An And Or But If Then Now Hi Hello Hey Return Answer Write Respond Reply "
    "Compute Calculate Look Search Check Fetch Set Be You Your We Our Yes No Ok OK"
)
_STARTERS = frozenset(_STARTERS_WORDS.split())


def _numbers(text: str) -> list[int | float]:
    out: list[int | float] = []
    for match in _NUMBER.finditer(text):
        raw = match.group(0)
        out.append(float(raw) if "." in raw else int(raw))
    return out


def quoted_strings(text: str) -> list[str]:
    """Phrases in double, single, back or curly quotes, in order."""
    return [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text)]


def _strings(text: str) -> list[str]:
    """Quoted phrases, then capitalized ones inside sentences, then sentence-initial ones."""
    quoted = quoted_strings(text)
    rest = _QUOTED.sub(" ", text)
    inner: list[str] = []
    initial: list[str] = []
    for match in _CAPITALIZED.finditer(rest):
        words = match.group(0).replace(",", " , ").split()
        before = rest[: match.start()].rstrip()
        opens_sentence = not before or before[-1] in ".!?:;"
        while words and (words[0] in _STARTERS or words[0] == ","):
            words.pop(0)
            opens_sentence = False
        while words and words[-1] == ",":
            words.pop()
        if words:
            phrase = " ".join(words).replace(" , ", ", ")
            (initial if opens_sentence else inner).append(phrase)
    return [s.strip() for s in quoted + inner + initial if s.strip()]


class PromptValues:
    """Candidate values found in prompt text, each handed out once, in order of appearance.

    ``primary`` is searched first (e.g. the part of the prompt after a tool's name), then
    ``fallback`` (the whole prompt). Strings are picked by what the field means
    (`tokenhub_emulator.meaning`): a place for ``city``, a time for ``date``, a proper noun for
    ``name``; numbers prefer one written next to the field's words (``price: 22.00``).
    """

    def __init__(self, primary: str, fallback: str = "", *, exclude: Iterable[str] = ()) -> None:
        self._excluded = {e.lower() for e in exclude}
        self._parts = [p for p in (primary, fallback) if p]
        self.text = f"{primary}\n{fallback}".lower()
        self._words = set(_WORD.findall(self.text))
        self._numbers = _dedupe(_numbers(primary) + _numbers(fallback))
        strings = _strings(primary) + _strings(fallback)
        self._strings = _dedupe([s for s in strings if s.lower() not in self._excluded])
        self._used_numbers: set[int] = set()
        self._used_strings: set[str] = set()

    def take_number(
        self, accept: Callable[[Any], bool], near: Iterable[str] = ()
    ) -> int | float | None:
        """The first unused prompt number that ``accept`` allows, preferring one after ``near``."""
        for word in near:
            if len(word) < 3:
                continue
            after = rf"(?<!\w){re.escape(word)}\w*[^\d\n.]{{0,24}}?(-?\d+(?:\.\d+)?)"
            before = rf"(-?\d+(?:\.\d+)?)[^\d\n.]{{0,24}}?(?<!\w){re.escape(word)}"
            for pattern in (after, before):
                for part in self._parts:
                    for match in re.finditer(pattern, part, re.IGNORECASE):
                        found = self._claim_number(match.group(1), accept)
                        if found is not None:
                            return found
        return num(_take(self._numbers, self._used_numbers, accept))

    def _claim_number(self, raw: str, accept: Callable[[Any], bool]) -> int | float | None:
        value: int | float = float(raw) if "." in raw else int(raw)
        index = next((i for i, n in enumerate(self._numbers) if n == value), None)
        if index is None or index in self._used_numbers or not accept(value):
            return None
        self._used_numbers.add(index)
        return value

    def take_string(self, accept: Callable[[Any], bool], kind: FieldKind = "other") -> str | None:
        """The first unused phrase for a field of ``kind`` that ``accept`` allows."""
        for candidate in self._candidates(kind):
            key = candidate.lower()
            if key in self._used_strings or key in self._excluded or not accept(candidate):
                continue
            self._used_strings.add(key)
            return candidate
        return None

    def _candidates(self, kind: FieldKind) -> list[str]:
        quoted = [q for part in self._parts for q in quoted_strings(part)]
        if kind == "place":
            found = [p for part in self._parts for p in places(part)]
            return found + [n for part in self._parts for n in proper_nouns(part)]
        if kind == "time":
            return [t for part in self._parts for t in time_phrases(part)]
        if kind == "name":
            return quoted + [n for part in self._parts for n in proper_nouns(part)]
        if kind == "query":
            topics = [t for part in self._parts for t in _topics(part)]
            return quoted + topics + [_clip_words(p) for p in self._parts]
        if kind == "text":
            return [f"[emulator] {_clip_words(p, 20)}" for p in self._parts]
        return [s for s in self._strings if not _is_time_phrase(s)] + self._strings

    def match_choice(self, options: list[Any]) -> tuple[bool, Any]:
        """An option the prompt names (as a word or phrase), if any; ``primary`` first."""
        for part in self._parts:
            lowered = part.lower()
            for option in options:
                if isinstance(option, str) and option and _mentions(lowered, option):
                    return True, option
        for option in options:
            if isinstance(option, bool) and str(option).lower() in self._words:
                return True, option
        return False, None

    def mentions(self, phrase: str) -> bool:
        """Whether ``phrase`` (or its snake_case words) occurs in the prompt as whole words."""
        return phrase.lower() in self._words or _mentions(self.text, phrase)

    def boolean(self) -> bool:
        """``false`` when the prompt says false/no (and not true/yes), else ``true``."""
        return not ({"false", "no"} & self._words and not {"true", "yes"} & self._words)


def _mentions(lowered_text: str, phrase: str) -> bool:
    spaced = re.sub(r"[_\-]+", " ", phrase.lower()).strip()
    pattern = rf"(?<!\w){re.escape(spaced)}(?!\w)"
    return bool(spaced) and re.search(pattern, lowered_text) is not None


_TOPIC = re.compile(r"\b(?:about|for|on|regarding)\s+([^.?!,;:\n]{2,60})", re.IGNORECASE)


def _topics(text: str) -> list[str]:
    return [m.group(1).strip() for m in _TOPIC.finditer(text)]


def _clip_words(text: str, limit: int = 12) -> str:
    words = text.split()
    return " ".join(words[:limit]) + ("…" if len(words) > limit else "")


def _is_time_phrase(text: str) -> bool:
    return bool(time_phrases(text))


def _dedupe(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if not any(type(s) is type(item) and s == item for s in seen):
            seen.append(item)
    return seen


def _take(items: list[Any], used: set[int], accept: Callable[[Any], bool]) -> Any:
    for i, item in enumerate(items):
        if i not in used and accept(item):
            used.add(i)
            return item
    return None


def generate(
    schema: Schema, *, root: Schema | None = None, values: PromptValues | None = None
) -> Any:
    """A value valid against ``schema`` (best effort for ``pattern`` and contradictory schemas)."""
    return _Generator(schema if root is None else root, values).value(schema, 0, "", 0)


def _merge(base: dict[str, Any], extra: Schema) -> dict[str, Any]:
    if not isinstance(extra, dict):
        return base
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return merged


def _schema_type(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        return str(non_null[0]) if non_null else "null"
    if isinstance(declared, str):
        return declared
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


class _Generator:
    def __init__(self, root: Schema, values: PromptValues | None) -> None:
        self.root = root
        self.values = values

    def value(self, schema: Schema, depth: int, name: str, index: int) -> Any:
        schema = deref(schema, self.root)
        if schema is True or schema is None:
            return f"emulator {name}".strip()
        if not isinstance(schema, dict) or depth > HARD_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._choice(schema, schema["enum"], index)
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, deref(part, self.root))
            return self.value(merged, depth + 1, name, index)
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self._branch(schema, key, depth, name, index)
        kind = _schema_type(schema)
        if kind == "object":
            return self._object(schema, depth, name)
        if kind == "array":
            return self._array(schema, depth, name)
        if kind in ("integer", "number"):
            return self._number(schema, kind == "integer", index, name)
        if kind == "boolean":
            return self.values.boolean() if self.values is not None else True
        if kind == "null":
            return None
        return self._string(schema, name, index)

    def _choice(self, schema: dict[str, Any], options: list[Any], index: int) -> Any:
        if self.values is not None:
            found, option = self.values.match_choice(options)
            if found:
                return option
        rest = {k: v for k, v in schema.items() if k != "enum"}
        pool = [o for o in options if fits(rest, o, root=self.root)] or options
        return pool[index % len(pool)]

    def _branch(self, schema: dict[str, Any], key: str, depth: int, name: str, index: int) -> Any:
        base = {k: v for k, v in schema.items() if k != key}
        branches = [deref(b, self.root) for b in schema[key]]

        def rank(branch: Schema) -> int:
            is_null = isinstance(branch, dict) and branch.get("type") == "null"
            nests = isinstance(branch, dict) and _schema_type(branch) in ("object", "array")
            if depth >= _MAX_DEPTH:  # prefer what ends a recursive structure
                return 0 if is_null else (2 if nests else 1)
            return 2 if is_null else 0

        first: Any = None
        for n, branch in enumerate(sorted(branches, key=rank)):
            candidate = self.value(_merge(dict(base), branch), depth + 1, name, index)
            if n == 0:
                first = candidate
            matching = sum(fits(b, candidate, root=self.root) for b in branches)
            if (matching == 1 if key == "oneOf" else matching >= 1) and fits(
                base, candidate, root=self.root
            ):
                return candidate
        return first

    def _object(self, schema: dict[str, Any], depth: int, name: str) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for prop, sub in properties.items():
            if prop in required or (depth < _MAX_DEPTH and self._prompt_mentions(prop, sub)):
                out[prop] = self.value(sub, depth + 1, prop, 0)
        for prop in required:
            if prop not in out:
                sub = extra if isinstance(extra, dict) else True
                out[prop] = self.value(sub, depth + 1, prop, 0)
        minimum = schema.get("minProperties")
        if isinstance(minimum, int):
            for prop, sub in properties.items():
                if len(out) >= minimum:
                    break
                out.setdefault(prop, self.value(sub, depth + 1, prop, 0))
            n = 0
            while len(out) < minimum and extra is not False and n < minimum + 10:
                n += 1
                sub = extra if isinstance(extra, dict) else True
                out.setdefault(f"key{n}", self.value(sub, depth + 1, f"key{n}", n))
        return out

    def _prompt_mentions(self, prop: str, sub: Schema) -> bool:
        """Whether the prompt speaks of an optional property: its name, or one of its options."""
        if self.values is None:
            return False
        if self.values.mentions(prop):
            return True
        sub = deref(sub, self.root)
        options = sub.get("enum") if isinstance(sub, dict) else None
        return isinstance(options, list) and self.values.match_choice(options)[0]

    def _array(self, schema: dict[str, Any], depth: int, name: str) -> list[Any]:
        low = schema.get("minItems")
        high = schema.get("maxItems")
        count = low if isinstance(low, int) else (0 if depth >= _MAX_DEPTH else 1)
        if isinstance(high, int):
            count = min(count, high)
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        out: list[Any] = []
        for i in range(count):
            if isinstance(prefix, list) and i < len(prefix):
                sub = prefix[i]
            else:
                sub = items if items is not False else True
            out.append(self.value(sub, depth + 1, name, i))
        if isinstance(prefix, list):
            for i in range(count, len(prefix)):
                if isinstance(high, int) and len(out) >= high:
                    break
                out.append(self.value(prefix[i], depth + 1, name, i))
        return out

    def _number(
        self, schema: dict[str, Any], integer: bool, index: int, name: str = ""
    ) -> int | float:
        if self.values is not None:
            found = self.values.take_number(
                lambda v: (
                    fits(schema, v, root=self.root) and (not integer or float(v).is_integer())
                ),
                near=sorted(field_words(name, str(schema.get("title") or ""))),
            )
            if found is not None:
                return int(found) if integer else found
        return _number_in_range(schema, integer, index)

    def _string(self, schema: dict[str, Any], name: str, index: int) -> str:
        fmt = schema.get("format")
        pattern = _FORMAT_PATTERNS.get(fmt) if isinstance(fmt, str) else None
        if self.values is not None:

            def accept(s: Any) -> bool:
                return (pattern is None or pattern.match(s) is not None) and fits(
                    schema, s, root=self.root
                )

            meaning = field_kind(
                name, str(schema.get("title") or ""), str(schema.get("description") or "")
            )
            found = self.values.take_string(accept, meaning)
            if found is not None:
                return found
        if isinstance(fmt, str) and fmt in _FORMAT_VALUES:
            text = _FORMAT_VALUES[fmt]
        else:
            text = f"emulator {name}".strip() + (f" {index + 1}" if index else "")
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(text) < low:
            text = text + "x" * (low - len(text))
        if isinstance(high, int) and len(text) > high:
            text = text[:high] if index == 0 or high < 1 else (str(index) + text)[:high]
        return text


def _number_in_range(schema: dict[str, Any], integer: bool, index: int) -> int | float:
    low, low_open = bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = bound(schema, "maximum", "exclusiveMaximum")
    step = num(schema.get("multipleOf"))
    if step is not None and step <= 0:
        step = None
    elif step is not None and integer and not float(step).is_integer():
        step = _integer_multiple(step)
    if step is not None:
        return _multiple_in_range(schema, step, low, high, integer, index)
    if integer:
        lo = None if low is None else math.floor(low) + 1 if low_open or low % 1 else int(low)
        hi = None if high is None else math.ceil(high) - 1 if high_open or high % 1 else int(high)
        value = 1 + index
        if lo is not None and value < lo:
            value = lo + index if hi is None else min(lo + index, hi)
        if hi is not None and value > hi:
            value = hi if lo is None else max(hi - index, lo)
        return value
    number = 1.5 + index
    below = low is not None and (number < low or (low_open and number == low))
    above = high is not None and (number > high or (high_open and number == high))
    if low is not None and high is not None and (below or above):
        return low + (high - low) / 2 if high > low else low
    if below and low is not None:
        return low + 1 + index
    if above and high is not None:
        return high - 1 - index
    return number


def _integer_multiple(step: float) -> int:
    """The smallest integer multiple of a fractional ``multipleOf``."""
    exact = Decimal(str(step))
    for k in range(1, 1001):
        if (exact * k) % 1 == 0:
            return int(exact * k)
    return 1


def _multiple_in_range(
    schema: dict[str, Any],
    step: float,
    low: float | None,
    high: float | None,
    integer: bool,
    index: int,
) -> int | float:
    exact = Decimal(str(step))
    first = 1 if low is None else math.ceil(low / step)
    if high is not None and low is None:
        first = min(first, math.floor(high / step))
    for k in range(first + index, first + index + 100):
        value: int | float = int(exact * k) if (exact * k) % 1 == 0 else float(exact * k)
        if fits(schema, value):
            return value
    return int(exact) if integer else float(exact)
