"""Structured output: output parsers that validate what Claude returns, and the schema prompt.

Claude's OpenAI-compatibility layer may ignore ``response_format`` and tool ``strict``, so JSON
is never guaranteed to match the schema: every final result is validated. Pydantic schemas are
validated by pydantic; JSON schemas and TypedDicts by the core's validator
(`tokenhub_core.schema.schema_errors`). Streaming yields partial objects as they arrive and checks
the last one when the stream ends.

One behavior for every schema kind: whatever goes wrong raises `OutputParserException` (with
``include_raw``, it is the ``parsing_error``) saying what was wrong: the reply has no call of the
schema's tool, the call's arguments are not valid JSON (or were cut off by ``max_tokens``), or
they do not match the schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from operator import itemgetter
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError

from tokenhub_core.schema import schema_errors

__all__ = [
    "ValidatedJsonKeyToolsParser",
    "ValidatedJsonOutputParser",
    "ValidatedPydanticToolsParser",
    "json_parser",
    "schema_instructions",
    "structured_runnable",
    "tool_call_parser",
]


def schema_instructions(schema: Mapping[str, Any]) -> str:
    """The system-prompt text that asks for JSON matching ``schema``."""
    return (
        "Respond with only a JSON object, no prose and no code fences, that validates against "
        f"this JSON Schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )


class _Validating:
    """Mixin: check final parses against ``json_schema``; in streams, check the last object."""

    json_schema: dict[str, Any] | None

    def _check(self, value: Any) -> Any:
        if self.json_schema is not None and value is not None:
            errors = schema_errors(value, self.json_schema)
            if errors:
                raise OutputParserException(
                    "the reply does not match the schema: " + "; ".join(errors[:5]),
                    llm_output=json.dumps(value, ensure_ascii=False, default=str),
                )
        return value

    def _check_last(self, last: Any) -> None:
        if last is None:
            raise OutputParserException("the stream ended without a structured result")
        self._check(last)

    def _checked_stream(self, parsed: Iterator[Any]) -> Iterator[Any]:
        last = None
        for last in parsed:
            yield last
        self._check_last(last)

    async def _achecked_stream(self, parsed: AsyncIterator[Any]) -> AsyncIterator[Any]:
        last = None
        async for last in parsed:
            yield last
        self._check_last(last)


def _no_valid_call(result: list[Generation], name: str) -> OutputParserException | None:
    """Why the reply holds no valid call of tool ``name``; None when it does."""
    generation = result[0] if result else None
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if not isinstance(message, AIMessage):
        return None
    if any(call["name"] == name for call in message.tool_calls):
        return None
    for call in message.invalid_tool_calls:
        if call.get("name") == name:
            return OutputParserException(
                f"the reply's {name!r} tool call is not valid: "
                f"{call.get('error') or 'its arguments are not a JSON object'}",
                llm_output=call.get("args") or "",
            )
    finish_reason = message.response_metadata.get("finish_reason")
    text = message.text
    said = f"; it answered in text: {text[:200]!r}" if text else ""
    return OutputParserException(
        f"the reply has no {name!r} tool call (finish_reason={finish_reason!r}){said}",
        llm_output=text,
    )


class ValidatedJsonOutputParser(_Validating, JsonOutputParser):
    """`JsonOutputParser` whose final result must match ``json_schema``."""

    json_schema: dict[str, Any] | None = None

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        parsed = super().parse_result(result, partial=partial)
        return parsed if partial else self._check(parsed)

    def _transform(self, input: Iterator[str | BaseMessage]) -> Iterator[Any]:
        return self._checked_stream(super()._transform(input))

    def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:
        return self._achecked_stream(super()._atransform(input))


class ValidatedJsonKeyToolsParser(_Validating, JsonOutputKeyToolsParser):
    """`JsonOutputKeyToolsParser` (first tool only) whose final arguments must match."""

    json_schema: dict[str, Any] | None = None

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        if not partial and (error := _no_valid_call(result, self.key_name)) is not None:
            raise error
        parsed = super().parse_result(result, partial=partial)
        if partial:
            return parsed
        if parsed is None:
            raise OutputParserException(f"the reply has no {self.key_name!r} tool call")
        return self._check(parsed)

    def _transform(self, input: Iterator[str | BaseMessage]) -> Iterator[Any]:
        return self._checked_stream(super()._transform(input))

    def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:
        return self._achecked_stream(super()._atransform(input))


class ValidatedPydanticToolsParser(_Validating, PydanticToolsParser):
    """`PydanticToolsParser` (first tool only) that raises, as the other kinds do, when the call
    is missing or invalid, instead of returning None or a raw ``ValidationError``."""

    json_schema: dict[str, Any] | None = None
    key_name: str = ""

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        if partial:
            return super().parse_result(result, partial=True)
        if (error := _no_valid_call(result, self.key_name)) is not None:
            raise error
        try:
            parsed = super().parse_result(result)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'the object'}: {e['msg']}"
                for e in exc.errors()[:5]
            ]
            raise OutputParserException(
                "the reply does not match the schema: " + "; ".join(problems),
                llm_output=str(result[0].text),
            ) from exc
        if parsed is None:
            raise OutputParserException(f"the reply has no {self.key_name!r} tool call")
        return parsed

    def _transform(self, input: Iterator[str | BaseMessage]) -> Iterator[Any]:
        return self._checked_stream(super()._transform(input))

    def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:
        return self._achecked_stream(super()._atransform(input))


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def tool_call_parser(schema: dict[str, Any] | type, name: str) -> Runnable[BaseMessage, Any]:
    """The parser of a forced tool call's arguments: a pydantic object or a validated dict."""
    if _is_pydantic(schema):
        return ValidatedPydanticToolsParser(
            tools=[schema],  # type: ignore[list-item]
            first_tool_only=True,
            key_name=name,
        )
    return ValidatedJsonKeyToolsParser(
        key_name=name, first_tool_only=True, json_schema=convert_to_json_schema(schema)
    )


def json_parser(schema: dict[str, Any] | type | None) -> Runnable[BaseMessage, Any]:
    """The parser of a JSON reply: a pydantic object, a validated dict, or any JSON."""
    if _is_pydantic(schema):
        return PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
    json_schema = None if schema is None else convert_to_json_schema(schema)
    return ValidatedJsonOutputParser(json_schema=json_schema)


def structured_runnable(
    llm: Runnable[LanguageModelInput, BaseMessage],
    parser: Runnable[BaseMessage, Any],
    *,
    include_raw: bool,
) -> Runnable[LanguageModelInput, Any]:
    """``llm | parser``, or with ``include_raw`` a map of raw, parsed and parsing_error."""
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse], exception_key="parsing_error")
