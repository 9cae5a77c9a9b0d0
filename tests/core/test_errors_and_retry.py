from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from tokenhub_core import errors
from tokenhub_core.errors import make_status_error, redact
from tokenhub_core.retry import parse_retry_after, retry_delay, status_is_retryable


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
