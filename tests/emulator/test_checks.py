"""The emulator refuses what TokenHub refuses, with OpenAI-shaped errors, over real HTTP."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import ADD_TOOL, MODEL, WEATHER_TOOL, chat
from tokenhub_emulator import TokenHubEmulator

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer sk-openai-key", "Bearer", "th-no-scheme", "Basic dGg6eA=="],
)
def test_a_missing_or_non_th_key_is_401(http: httpx.Client, authorization: str | None) -> None:
    request = http.build_request("POST", "/chat/completions", json=chat())
    del request.headers["authorization"]
    if authorization is not None:
        request.headers["authorization"] = authorization
    response = http.send(request)
    assert response.status_code == 401
    assert _error(response)["type"] == "authentication_error"
    assert response.headers["x-request-id"]


def test_any_th_key_is_accepted(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", json=chat(), headers={"Authorization": "Bearer th-some-other-key"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-6", "claude-sonnet-4-6"])
def test_both_model_id_forms_work_and_are_echoed(http: httpx.Client, model: str) -> None:
    response = http.post("/chat/completions", json={**chat(), "model": model})
    assert response.status_code == 200
    assert response.json()["model"] == model


@pytest.mark.parametrize("model", ["anthropic/claude-nope", "gpt-4o", "claude-sonnet-9"])
def test_an_unknown_model_is_404_naming_the_param(http: httpx.Client, model: str) -> None:
    response = http.post("/chat/completions", json={**chat(), "model": model})
    assert response.status_code == 404
    error = _error(response)
    assert error["param"] == "model"
    assert error["code"] == "model_not_found"
    assert model in error["message"]


def test_invalid_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        content=b'{"model": "x", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ([1, 2], None),
        (chat(temperature=1.5), "temperature"),
        (chat(temperature=-0.1), "temperature"),
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=0.5, top_p=0.9), "top_p"),
        (chat(top_p=2), "top_p"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat(stop=[1]), "stop"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens=-5), "max_tokens"),
        (chat(max_tokens=2.5), "max_tokens"),
        (chat(max_tokens="10"), "max_tokens"),
        (chat(max_tokens=10**7), "max_tokens"),
        (chat(max_completion_tokens=0), "max_completion_tokens"),
        (chat(n=2), "n"),
        (chat(stream="yes"), "stream"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "content": "42", "tool_call_id": "call_missing"},
                ],
            },
            "messages[1].tool_call_id",
        ),
        (
            chat(
                tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}
            ),
            "tool_choice",
        ),
        (chat(tool_choice="required"), "tool_choice"),
        (chat(tools=[WEATHER_TOOL], tool_choice="sometimes"), "tool_choice"),
        (
            chat(tools=[{"type": "function", "function": {"name": "bad name!"}}]),
            "tools[0].function.name",
        ),
        (chat(tools=[WEATHER_TOOL, WEATHER_TOOL]), "tools[1].function.name"),
        (chat(response_format={"type": "xml"}), "response_format.type"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
    ],
)
def test_a_bad_request_is_400_naming_the_field(
    http: httpx.Client, body: Any, param: str | None
) -> None:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,@@not-base64@@",
        "data:image/png;base64,",
        "data:image/bmp;base64," + PNG,
        "data:image/png," + PNG,
        "ftp://example.com/cat.png",
        "cat.png",
    ],
)
def test_a_malformed_image_url_is_400(http: httpx.Client, url: str) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    response = http.post("/chat/completions", json=chat(content))
    assert response.status_code == 400
    assert _error(response)["param"] == "messages[0].content[1].image_url.url"


def test_valid_edge_values_are_accepted(http: httpx.Client) -> None:
    body = chat(
        temperature=0,
        stop=["a", "b", "c", "d"],
        max_tokens=1,
        tools=[ADD_TOOL],
        tool_choice="auto",
        parallel_tool_calls=False,
        user="u-1",
    )
    assert http.post("/chat/completions", json=body).status_code == 200
    assert http.post("/chat/completions", json=chat(temperature=1, top_p=None)).status_code == 200
    assert http.post("/chat/completions", json=chat(top_p=0.5)).status_code == 200


def test_a_tool_result_must_answer_a_call_of_the_previous_assistant_turn(
    http: httpx.Client,
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
    }
    messages = [
        {"role": "user", "content": "add 1 and 2"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    ok = http.post("/chat/completions", json={"model": MODEL, "messages": messages})
    assert ok.status_code == 200
    messages[2] = {"role": "tool", "tool_call_id": "call_2", "content": "3"}
    bad = http.post("/chat/completions", json={"model": MODEL, "messages": messages})
    assert bad.status_code == 400


def test_every_answer_has_a_distinct_request_id(http: httpx.Client) -> None:
    answers = [
        http.post("/chat/completions", json=chat()),
        http.post("/chat/completions", json={"model": MODEL}),
        http.post("/chat/completions", json={**chat(), "model": "nope"}),
        http.get("/models"),
        http.get("/nowhere"),
        http.get("/chat/completions"),
    ]
    assert [r.status_code for r in answers] == [200, 400, 404, 200, 404, 405]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(ids) and len(set(ids)) == len(ids)
    assert _error(answers[4])["type"] == "not_found_error"


def test_the_openai_style_path_without_api_prefix_also_works(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    response = http.post(f"{tokenhub_emulator.url}/v1/chat/completions", json=chat())
    assert response.status_code == 200


def test_models_lists_the_catalog(http: httpx.Client) -> None:
    ids = [m["id"] for m in http.get("/models").json()["data"]]
    assert "anthropic/claude-sonnet-4-6" in ids
    assert len(ids) == 10
