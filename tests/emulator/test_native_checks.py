"""``POST /v1/messages`` refuses what Claude refuses, in Claude's error shape and wording."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.native_helpers import ADD, MODEL, WEATHER, body, post
from tokenhub_emulator import TokenHubEmulator

THINKING = {"type": "enabled", "budget_tokens": 1024}


def _error(response: httpx.Response, status: int, type_: str = "invalid_request_error") -> str:
    assert response.status_code == status, response.text
    data = response.json()
    assert data["type"] == "error" and data["error"]["type"] == type_
    assert data["request_id"] == response.headers["request-id"]
    message: str = data["error"]["message"]
    return message


def test_the_key_goes_in_x_api_key_or_a_bearer_header(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    url = f"{tokenhub_emulator.url}/v1/messages"
    key = tokenhub_emulator.api_key
    for headers in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        assert httpx.post(url, json=body(), headers=headers).status_code == 200
    missing = httpx.post(url, json=body())
    assert _error(missing, 401, "authentication_error") == "x-api-key header is required"
    wrong = httpx.post(url, json=body(), headers={"x-api-key": "sk-ant-123"})
    assert _error(wrong, 401, "authentication_error") == "invalid x-api-key"
    recorded = tokenhub_emulator.requests[0]
    assert recorded.headers["x-api-key"] == "th-***"


def test_a_bad_anthropic_version_is_refused(http: httpx.Client) -> None:
    response = post(http, body(), **{"anthropic-version": "yesterday"})
    assert "anthropic-version" in _error(response, 400)


def test_an_unknown_model_is_a_404(http: httpx.Client) -> None:
    assert _error(post(http, body(model="claude-9")), 404, "not_found_error") == "model: claude-9"


def _two_turns(assistant: list[dict[str, Any]], user: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": user},
        ],
    }


CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "x"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}
TEXT = {"type": "text", "text": "and?"}

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("no max_tokens", {"model": MODEL, "messages": []}, "max_tokens: Field required"),
    ("no messages", {"model": MODEL, "max_tokens": 5}, "messages: Field required"),
    ("unknown field", body(frequency_penalty=1), "frequency_penalty: Extra inputs are not"),
    ("max_tokens 0", body(max_tokens=0), "max_tokens: Input should be greater than or equal"),
    ("max_tokens too many", body(max_tokens=200_000), "max_tokens: 200000 > 128000"),
    ("system role", body(messages=[{"role": "system", "content": "x"}]), 'Unexpected role "system"'),
    ("tool role", body(messages=[{"role": "tool", "content": "x"}]), "role: Input should be"),
    ("empty text", body(""), "text content blocks must be non-empty"),
    ("blank text", body("  "), "text content blocks must contain non-whitespace text"),
    ("image_url part", body([{"type": "image_url", "image_url": {}}]), "content.0.type"),
    ("temperature 1.5", body(temperature=1.5), "temperature: Input should be less than"),
    ("temperature and top_p", body(temperature=0.5, top_p=0.5), "cannot both be specified"),
    ("stop not a list", body(stop_sequences="x"), "stop_sequences: Input should be"),
    ("five stops", body(stop_sequences=list("abcde")), "at most 4"),
    ("tool without schema", body(tools=[{"name": "f"}]), "tools.0.input_schema: Field required"),
    ("duplicate tools", body(tools=[WEATHER, WEATHER]), "Tool names must be unique"),
    ("any without tools", body(tool_choice={"type": "any"}), "requires tools"),
    (
        "unknown tool named",
        body(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}),
        "Tool 'nope' not found",
    ),
    ("openai tool_choice", body(tools=[WEATHER], tool_choice="auto"), "tool_choice: Input should"),
    (
        "unanswered tool_use",
        _two_turns([CALL], [TEXT]),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1",
    ),
    (
        "stray tool_result",
        _two_turns([{"type": "text", "text": "ok"}], [RESULT]),
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1",
    ),
    (
        "bad image data",
        body([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%"}}]),
        "not valid base64",
    ),
    (
        "bad image type",
        body([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "QQ=="}}]),
        "media_type: Input should be 'image/jpeg'",
    ),
    (
        "pdf that is not a pdf",
        body([{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "aGVsbG8="}}]),
        "The PDF specified was not valid.",
    ),
    (
        "word document",
        body([{"type": "document", "source": {"type": "base64", "media_type": "application/msword", "data": "aGVsbG8="}}]),
        "media_type: Input should be 'application/pdf'",
    ),
    (
        "ftp document",
        body([{"type": "document", "source": {"type": "url", "url": "ftp://x/y.pdf"}}]),
        "source.url: Input should be a valid http(s) URL",
    ),
    ("budget below 1024", body(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1000}), "greater than or equal to 1024"),
    ("budget not below max_tokens", body(max_tokens=1024, thinking=THINKING), "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("temperature with thinking", body(max_tokens=4000, thinking=THINKING, temperature=0.5), "`temperature` may only be set to 1 when thinking is enabled"),
    ("top_p with thinking", body(max_tokens=4000, thinking=THINKING, top_p=0.5), "`top_p` must be between 0.95 and 1"),
    ("top_k with thinking", body(max_tokens=4000, thinking=THINKING, top_k=5), "`top_k` may not be set when thinking is enabled"),
    (
        "forced tool with thinking",
        body(max_tokens=4000, thinking=THINKING, tools=[ADD], tool_choice={"type": "any"}),
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    ("unknown thinking type", body(thinking={"type": "deep"}), "thinking.type: Input should be"),
    ("opus 4.7 enabled", body(model="claude-opus-4-7", max_tokens=4000, thinking=THINKING), "'enabled' is not supported for claude-opus-4-7; use 'adaptive'"),
    ("haiku adaptive", body(model="claude-haiku-4-5", thinking={"type": "adaptive"}), "'adaptive' is not supported for claude-haiku-4-5; use 'enabled'"),
    ("3.5 thinking", body(model="claude-3-5-haiku-latest", max_tokens=4000, thinking=THINKING), "does not support extended thinking"),
    ("bad cache ttl", body([{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]), "cache_control.ttl"),
    (
        "1h after 5m",
        body(
            [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        ),
        "must not come after a ttl='5m'",
    ),
    (
        "message-level cache_control",
        body(messages=[{"role": "user", "content": "x", "cache_control": {"type": "ephemeral"}}]),
        "messages.0.cache_control: Extra inputs are not permitted",
    ),
    (
        "five breakpoints",
        body([{"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}} for i in range(5)]),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_claudes_request_rules(http: httpx.Client, data: dict[str, Any], expected: str) -> None:
    assert expected in _error(post(http, data), 400)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("temperature 1 with thinking", body(max_tokens=4000, thinking=THINKING, temperature=1)),
    ("top_p 0.95 with thinking", body(max_tokens=4000, thinking=THINKING, top_p=0.95)),
    ("auto tool_choice with thinking", body(max_tokens=4000, thinking=THINKING, tools=[ADD], tool_choice={"type": "auto"})),
    ("disabled thinking", body(thinking={"type": "disabled"}, temperature=0.2)),
    ("opus 4.7 adaptive", body(model="claude-opus-4-7", thinking={"type": "adaptive"})),
    ("sonnet 4.6 both", body(model="claude-sonnet-4-6", max_tokens=4000, thinking=THINKING)),
    ("top_k alone", body(top_k=5)),
    ("prefill", body(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}])),
    ("system blocks and metadata", body(system=[{"type": "text", "text": "Be brief."}], metadata={"user_id": "u1"})),
    ("request-level cache_control", body(cache_control={"type": "ephemeral"})),
]  # fmt: skip


@pytest.mark.parametrize("data", [r[1] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_what_claude_accepts(http: httpx.Client, data: dict[str, Any]) -> None:
    response = post(http, data)
    assert response.status_code == 200, response.text


def test_the_context_window(http: httpx.Client) -> None:
    long = "word " * 900_000  # ~1.1M tokens for the 1M window of Sonnet 4.6
    message = _error(post(http, body(long)), 400)
    assert message.startswith("prompt is too long: ") and message.endswith("> 1000000 maximum")


def test_a_body_over_32_mb_is_a_413(tokenhub_emulator: TokenHubEmulator) -> None:
    huge = b'{"x": "' + b"a" * (32 << 20) + b'"}'
    response = httpx.post(
        f"{tokenhub_emulator.url}/v1/messages",
        content=huge,
        headers={"x-api-key": tokenhub_emulator.api_key, "content-type": "application/json"},
        timeout=30,
    )
    assert "32 MB" in _error(response, 413, "request_too_large")


def test_refused_requests_are_recorded_and_never_billed(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    post(http, body(max_tokens=0))
    assert [r.status for r in tokenhub_emulator.requests] == [400]
    assert tokenhub_emulator.ledger().calls == 0


def test_a_get_is_a_405_in_claudes_shape(tokenhub_emulator: TokenHubEmulator) -> None:
    response = httpx.get(f"{tokenhub_emulator.url}/v1/messages")
    assert "Method GET not allowed" in _error(response, 405)


def test_an_internal_error_is_a_500_api_error_in_claudes_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starlette.testclient import TestClient

    from tokenhub_emulator import app as app_module
    from tokenhub_emulator.state import EmulatorState

    def broken(*args: Any) -> Any:
        raise RuntimeError("engine down")

    monkeypatch.setattr(app_module, "answer", broken)
    with TestClient(app_module.create_app(EmulatorState()), raise_server_exceptions=False) as c:
        response = c.post("/v1/messages", json=body(), headers={"x-api-key": "th-x"})
    assert "engine down" in _error(response, 500, "api_error")
