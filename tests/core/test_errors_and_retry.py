import json
import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from tokenhub_core import TokenHubClient, errors
from tokenhub_core.errors import make_status_error, redact
from tokenhub_core.retry import parse_retry_after, retry_delay, status_is_retryable
from tokenhub_emulator import TokenHubEmulator


def test_the_tree_is_as_documented() -> None:
    e = errors
    assert issubclass(e.APITimeoutError, e.APIConnectionError)
    assert issubclass(e.StreamInterruptedError, e.APIConnectionError)
    for cls in (
        e.BadRequestError,
        e.AuthenticationError,
        e.PaymentRequiredError,
        e.PermissionDeniedError,
        e.NotFoundError,
        e.RateLimitError,
        e.InternalServerError,
    ):
        assert issubclass(cls, e.APIStatusError)
    for cls in (e.APIConnectionError, e.APIStatusError, e.APIResponseError, e.BudgetExceededError):
        assert issubclass(cls, e.TokenHubError)
    assert issubclass(e.InvalidParameterError, ValueError)
    for name in errors.__all__:
        assert name in (errors.__doc__ or "") or name in {"make_status_error"}
    assert issubclass(e.UnknownParameterError, TypeError)
    assert issubclass(e.IncompleteToolCallError, ValueError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (402, errors.PaymentRequiredError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (422, errors.BadRequestError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (503, errors.InternalServerError),
        (529, errors.InternalServerError),
        (409, errors.APIStatusError),
        (418, errors.APIStatusError),
    ],
)
def test_status_maps_to_its_class_with_message_request_id_and_body(
    status: int, cls: type[errors.APIStatusError]
) -> None:
    body = (
        b'{"error": {"message": "nope", "type": "invalid_request_error", "param": "temperature"}}'
    )
    error = make_status_error(status, {"x-request-id": "req_42"}, body, retry_after=3.0)
    assert type(error) is cls
    assert (error.status_code, error.message, error.request_id, error.retry_after) == (
        status,
        "nope",
        "req_42",
        3.0,
    )
    assert error.param == "temperature" and error.error_type == "invalid_request_error"
    assert error.body == {
        "error": {"message": "nope", "type": "invalid_request_error", "param": "temperature"}
    }
    assert str(error) == f"Error code: {status} - nope (request_id: req_42)"


def test_html_error_page_gives_its_title() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    error = make_status_error(502, {}, page)
    assert "502 Bad Gateway" in error.message and "<" not in error.message


def test_plain_text_and_odd_json_bodies() -> None:
    assert make_status_error(500, {}, b"upstream exploded").message == "upstream exploded"
    assert make_status_error(500, {}, b'{"message": "flat"}').message == "flat"
    assert make_status_error(500, {}, b'{"error": "just a string"}').message == "just a string"
    assert make_status_error(500, {}, b"").message == "(empty body)"
    assert len(make_status_error(500, {}, b"x" * 5000).message) < 600


def test_the_key_never_appears_even_when_the_server_echoes_it() -> None:
    key = "th-secret-key-123456"
    body = f'{{"error": {{"message": "bad key {key} for Bearer {key}"}}}}'.encode()
    error = make_status_error(401, {}, body, secret=key)
    assert key not in str(error) and key not in repr(error) and key not in error.message
    assert "th-" not in redact(f"token th-abcdef123 and {key}").replace("th-***", "")


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    date = format_datetime(
        datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=30), usegmt=True
    )
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "4"}) == 4.0


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (408, {}, True),
        (409, {}, True),
        (429, {}, True),
        (500, {}, True),
        (502, {}, True),
        (529, {}, True),
        (400, {}, False),
        (401, {}, False),
        (403, {}, False),
        (404, {}, False),
        (422, {}, False),
        (402, {}, False),
        (402, {"x-should-retry": "true"}, False),
        (500, {"x-should-retry": "false"}, False),
        (400, {"x-should-retry": "true"}, True),
    ],
)
def test_which_statuses_are_retried(status: int, headers: dict[str, str], expected: bool) -> None:
    assert status_is_retryable(status, headers) is expected


def _status(retry_after: float | None) -> errors.APIStatusError:
    return errors.RateLimitError("slow down", status_code=429, retry_after=retry_after)


def test_backoff_grows_from_half_a_second_caps_at_eight_with_jitter() -> None:
    error = _status(None)
    for attempt, top in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
        delays = [
            retry_delay(error, attempt=attempt, max_retries=10, retryable=True) for _ in range(50)
        ]
        assert all(d is not None and 0.75 * top <= d <= top for d in delays)


def test_retry_after_is_honored_up_to_sixty_seconds_then_raised_at_once() -> None:
    assert retry_delay(_status(7.0), attempt=0, max_retries=2, retryable=True) == 7.0
    assert retry_delay(_status(60.0), attempt=0, max_retries=2, retryable=True) == 60.0
    assert retry_delay(_status(61.0), attempt=0, max_retries=2, retryable=True) is None
    zero = retry_delay(_status(0.0), attempt=0, max_retries=2, retryable=True)
    assert zero is not None and 0.375 <= zero <= 0.5


def test_no_retry_when_out_of_attempts_or_not_retryable() -> None:
    assert retry_delay(_status(None), attempt=2, max_retries=2, retryable=True) is None
    assert retry_delay(_status(None), attempt=0, max_retries=2, retryable=False) is None
    conn = errors.APIConnectionError("down")
    assert retry_delay(conn, attempt=0, max_retries=1, retryable=False) is not None
    assert (
        retry_delay(errors.APIResponseError("bad"), attempt=0, max_retries=2, retryable=True)
        is None
    )


# --- 11.15 picklable with attributes; 12.9 keys redacted in bodies; 12.4 nested bodies ---------


def _every_error() -> list[errors.TokenHubError]:
    return [
        errors.InvalidParameterError("temperature", 3, "a number from 0.0 to 1.0"),
        errors.UnknownParameterError("temprature", "TokenHub", "did you mean 'temperature'?"),
        errors.IncompleteToolCallError("transfer", '{"to": "DE', "length"),
        errors.MissingAPIKeyError(),
        errors.BudgetExceededError("over", budget_usd=0.01, spent_usd=0.0, worst_case_usd=0.02),
        errors.APIConnectionError("down"),
        errors.APITimeoutError("slow"),
        errors.StreamInterruptedError("cut", request_id="req_1"),
        errors.APIResponseError("broken", body={"x": 1}, request_id="req_2", code="c"),
        *[
            make_status_error(status, {"x-request-id": "req_3"}, b'{"error": {"message": "m"}}')
            for status in (400, 401, 402, 403, 404, 409, 429, 500)
        ],
    ]


@pytest.mark.parametrize("error", _every_error(), ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(error: errors.TokenHubError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (str(copy), copy.args, vars(copy)) == (str(error), error.args, vars(error))


def test_the_whole_key_is_masked_whatever_follows_th() -> None:
    for key in ("th-abc/def+ghi.jkl=mno", "th-abcd.efgh", "th-ab=cd/ef+gh"):
        assert redact(f"bad key {key}, try again") == "bad key th-***, try again"
    assert redact("width-100px and south-east") == "width-100px and south-east"


def test_echoed_keys_are_redacted_in_the_body_too() -> None:
    key = "th-abc/def+ghi.jkl=mno"
    body = json.dumps({"error": {"message": f"bad key {key}", "key": key}}).encode()
    error = make_status_error(401, {}, body, secret=key)
    assert key not in repr(error.body) and "def+ghi" not in repr(error.body)
    assert key not in repr(pickle.loads(pickle.dumps(error)).body)
    response_error = errors.APIResponseError("x", body={"echo": [f"Bearer {key}"]})
    assert "def+ghi" not in repr(response_error.body)


async def test_a_server_echoing_the_key_over_http_leaves_it_nowhere(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    key = "th-emulator/with+odd.chars="
    tokenhub_emulator.fail_next(
        401, body={"error": {"message": f"invalid key {key}", "type": "auth", "echo": key}}
    )
    client = TokenHubClient(api_key=key, base_url=tokenhub_emulator.base_url, max_retries=0)
    with pytest.raises(errors.AuthenticationError) as info:
        await client.achat(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    shown = [str(info.value), repr(info.value), repr(info.value.body), repr(vars(info.value))]
    assert not [text for text in shown if "with+odd" in text]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_an_error_body_nested_too_deeply_is_still_a_typed_error(depth: int) -> None:
    body = ('{"error": ' * depth + '"x"' + "}" * depth).encode()
    error = make_status_error(500, {}, body)
    assert isinstance(error, errors.InternalServerError)
    assert error.status_code == 500
