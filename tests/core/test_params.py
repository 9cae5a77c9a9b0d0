import pytest

from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.params import (
    build_body,
    check_image_url,
    check_sampling_params,
    estimate_tokens,
    normalize_stop,
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
        body(top_k=5)


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
