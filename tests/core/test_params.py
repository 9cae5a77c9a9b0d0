import httpx
import pytest

from tokenhub_core.errors import InvalidParameterError, UnknownParameterError
from tokenhub_core.params import (
    apply_aliases,
    build_body,
    check_image_url,
    check_max_retries,
    check_no_secrets,
    check_sampling_params,
    estimate_tokens,
    normalize_messages,
    normalize_stop,
    normalize_timeout,
    normalize_tool_call_id,
)

USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
PNG = "data:image/png;base64,iVBORw0KGgo="


def body(**params: object) -> dict[str, object]:
    return build_body("anthropic/claude-sonnet-4-6", USER, stream=False, **params)


def test_body_carries_only_what_was_set_and_defaults_max_tokens() -> None:
    assert body(temperature=None, top_p=None, stop=None, user=None) == {
        "model": "anthropic/claude-sonnet-4-6",
        "messages": USER,
        "max_tokens": 1024,
    }
    assert body(max_tokens=None)["max_tokens"] == 1024
    assert body(max_tokens=7, temperature=0.2, user="u1")["temperature"] == 0.2


def test_stream_body_asks_for_usage() -> None:
    streamed = build_body("m", USER, stream=True, stream_options={"x": 1})
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"x": 1, "include_usage": True}
    assert "stream_options" not in body()


def test_extra_body_is_merged_and_still_validated() -> None:
    assert body(extra_body={"top_k": 5})["top_k"] == 5
    with pytest.raises(InvalidParameterError, match="temperature"):
        body(extra_body={"temperature": 3})


def test_unknown_keyword_is_a_type_error_pointing_at_extra_body() -> None:
    with pytest.raises(TypeError, match="extra_body"):
        body(frequency_penalty=0.5)


@pytest.mark.parametrize(
    ("params", "param_name", "allowed"),
    [
        ({"temperature": 1.5}, "temperature", "0.0 to 1.0"),
        ({"temperature": -0.1}, "temperature", "0.0 to 1.0"),
        ({"temperature": True}, "temperature", "0.0 to 1.0"),
        ({"temperature": "0.5"}, "temperature", "0.0 to 1.0"),
        ({"top_p": 2}, "top_p", "0.0 to 1.0"),
        ({"temperature": 0.5, "top_p": 0.9}, "top_p", "not both"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": [""]}, "stop", "non-empty"),
        ({"stop": 5}, "stop", "list of strings"),
        ({"max_tokens": 0}, "max_tokens", "positive integer"),
        ({"max_tokens": 10.5}, "max_tokens", "positive integer"),
        ({"max_tokens": True}, "max_tokens", "positive integer"),
        ({"n": 2}, "n", "1"),
        ({"tool_choice": "any"}, "tool_choice", '"auto", "none", "required"'),
        ({"tool_choice": "required"}, "tool_choice", "at least one tool"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
            "get_weather",
        ),
        ({"tool_choice": {"type": "function"}}, "tool_choice", "function"),
        ({"tools": [{"type": "function"}]}, "tools", "function"),
    ],
)
def test_each_rule_names_parameter_value_and_what_is_allowed(
    params: dict[str, object], param_name: str, allowed: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        body(**params)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.param == param_name
    assert allowed in error.allowed
    assert param_name in str(error) and allowed in str(error)


def test_valid_tool_choices_pass() -> None:
    for choice in (
        "auto",
        "none",
        "required",
        {"type": "function", "function": {"name": "get_weather"}},
    ):
        assert body(tools=[TOOL], tool_choice=choice)["tool_choice"] == choice
    assert body(tool_choice="auto")["tool_choice"] == "auto"


def test_a_single_stop_string_is_one_sequence() -> None:
    assert body(stop="END")["stop"] == ["END"]
    assert normalize_stop(("a", "b")) == ["a", "b"]
    assert normalize_stop(None) is None


@pytest.mark.parametrize(
    ("messages", "param_name"),
    [
        ([], "messages"),
        ("hello", "messages"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"content": "x"}], "messages[0].role"),
        (["hi"], "messages[0]"),
        (
            [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}],
            "messages[1].tool_call_id",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}
                    ],
                }
            ],
            "messages[0].content.image_url",
        ),
    ],
)
def test_message_rules(messages: object, param_name: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        build_body("m", messages, stream=False)  # type: ignore[arg-type]
    assert caught.value.param == param_name


def test_sampling_check_alone_is_what_adapters_call_at_construction() -> None:
    check_sampling_params(temperature=0, stop="x", max_tokens=1)
    check_sampling_params(top_p=1.0)
    with pytest.raises(InvalidParameterError):
        check_sampling_params(temperature=0.1, top_p=0.1)


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://x/y", PNG, "data:image/jpeg;base64,/9j/4AA="]
)
def test_accepted_image_urls(url: str) -> None:
    check_image_url(url)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("data:image/bmp;base64,AAAA", "image/jpeg, image/png, image/gif, image/webp"),
        ("data:application/pdf;base64,AAAA", "image/jpeg"),
        ("data:image/png,rawbytes", "base64"),
        ("data:image/png;base64,", "base64"),
        ("data:image/png;base64,not base64!!", "valid base64"),
        ("ftp://x/y.png", "https:// URL"),
        ("/tmp/cat.png", "https:// URL"),
    ],
)
def test_rejected_image_urls(url: str, allowed: str) -> None:
    with pytest.raises(InvalidParameterError, match="image_url") as caught:
        check_image_url(url)
    assert allowed in caught.value.allowed


def test_tool_call_ids_are_made_safe_stably_and_without_collisions() -> None:
    assert normalize_tool_call_id("call_abc-1") == "call_abc-1"
    a, b = normalize_tool_call_id("call:1"), normalize_tool_call_id("call.1")
    assert a != b
    for safe in (a, b, normalize_tool_call_id(""), normalize_tool_call_id("toolu/ü")):
        assert safe and all(c.isascii() and (c.isalnum() or c in "_-") for c in safe)
    assert normalize_tool_call_id("call:1") == a


def test_token_estimate_grows_with_text_images_and_tools() -> None:
    base = estimate_tokens(USER)
    longer = estimate_tokens([{"role": "user", "content": "hi " * 400}])
    image = estimate_tokens(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}]
    )
    assert base < longer
    assert image >= 1600
    assert estimate_tokens(USER, [TOOL]) > base


# --- aliases, unknown fields, secrets, timeouts (issue 11 items 5-7) --------------------------


def test_chatopenai_names_are_renamed_and_conflicts_refused() -> None:
    assert apply_aliases(
        {"openai_api_key": "k", "api_base": "u", "request_timeout": 5, "max_completion_tokens": 9},
        where="X",
    ) == {"api_key": "k", "base_url": "u", "timeout": 5, "max_tokens": 9}
    assert apply_aliases({"model_name": "m", "model": "m"}, where="X") == {"model": "m"}
    with pytest.raises(InvalidParameterError, match="max_tokens"):
        apply_aliases({"max_completion_tokens": 9, "max_tokens": 10}, where="X")
    with pytest.raises(InvalidParameterError) as info:
        apply_aliases({"openai_api_key": "th-one-1234", "api_key": "th-two-1234"}, where="X")
    assert "th-one" not in str(info.value) and "th-two" not in str(info.value)


def test_unknown_fields_are_type_errors_with_a_suggestion() -> None:
    with pytest.raises(UnknownParameterError, match="did you mean 'temperature'") as info:
        body(temprature=0.2)
    assert isinstance(info.value, TypeError) and info.value.param == "temprature"
    with pytest.raises(UnknownParameterError, match="extra_body") as info:
        body(frobnicate=5)
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    "name", ["api_key", "openai_api_key", "Authorization", "client_secret", "password", "apiKey"]
)
def test_credentials_are_never_put_in_the_body(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="credentials") as info:
        body(extra_body={name: "th-leak-1234"})
    assert "th-leak-1234" not in str(info.value)
    check_no_secrets({"max_tokens": 1, "top_k": 2, "user": "u"}, param="extra_body")


def test_timeout_forms() -> None:
    assert normalize_timeout(5) == httpx.Timeout(5)
    assert normalize_timeout(None) == httpx.Timeout(None)
    assert normalize_timeout((1, 7)) == httpx.Timeout(7, connect=1)
    assert normalize_timeout((1, 2, 3, 4)) == httpx.Timeout(connect=1, read=2, write=3, pool=4)
    given = httpx.Timeout(3)
    assert normalize_timeout(given) is given
    for bad in ("5", 0, -1, float("inf"), (1, 2, 3), True, [1, "x"]):
        with pytest.raises(InvalidParameterError, match="timeout"):
            normalize_timeout(bad)
    assert check_max_retries(0) == 0
    for bad_retries in (-1, 1.5, True, "2"):
        with pytest.raises(InvalidParameterError, match="max_retries"):
            check_max_retries(bad_retries)


# --- Claude's message rules (issue 11 item 13) and lone surrogates (issue 12 item 5) ------------


def test_system_messages_go_first_joined_and_blank_parts_are_dropped() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": " "}, {"type": "text", "text": "a"}]},
        {"role": "assistant", "content": "  "},
        {"role": "system", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "b"},
    ]
    original = [dict(m) for m in messages]
    assert normalize_messages(messages) == [
        {"role": "system", "content": "Be brief.\nUse French."},
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": "b"},
    ]
    assert messages == original  # the caller's list is untouched


def test_a_cache_control_keeps_the_system_prompt_as_parts() -> None:
    marked = {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    wire = normalize_messages([{"role": "system", "content": [marked]}, *USER])
    assert wire[0] == {"role": "system", "content": [marked]}


def test_an_assistant_turn_with_tool_calls_and_no_text_has_null_content() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    wire = normalize_messages([*USER, {"role": "assistant", "content": "", "tool_calls": [call]}])
    assert wire[1] == {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize(
    ("messages", "param_name"),
    [
        ([{"role": "user", "content": ""}], "messages[0].content"),
        (
            [{"role": "system", "content": "x"}, {"role": "user", "content": "  "}],
            "messages[1].content",
        ),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "messages[0].content"),
        ([{"role": "user", "content": None}], "messages[0].content"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}],
            "messages[0].content[0].type",
        ),
    ],
)
def test_content_claude_rejects_is_refused_naming_it(messages: object, param_name: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        build_body("m", messages, stream=False)  # type: ignore[arg-type]
    assert caught.value.param == param_name


def test_a_lone_surrogate_is_refused_naming_where_it_is() -> None:
    with pytest.raises(InvalidParameterError, match="surrogate") as caught:
        build_body("m", [{"role": "user", "content": "ok \ud800 broken"}], stream=False)
    assert caught.value.param == "messages[0].content"
    with pytest.raises(InvalidParameterError) as caught:
        build_body(
            "m",
            [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}],
            stream=False,
        )
    assert caught.value.param == "messages[0].content[0].text"
    with pytest.raises(InvalidParameterError) as caught:
        body(tools=[{**TOOL, "function": {**TOOL["function"], "description": "\ud83d"}}])
    assert caught.value.param == "tools[0].function.description"
    assert body(user="emoji \U0001f600 fine")["user"] == "emoji \U0001f600 fine"
