"""Prompt caching on ``/v1/messages``: prefixes written, read back, expired, and priced."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.emulator.native_helpers import MODEL, WEATHER, body, post
from tokenhub_core.catalog import resolve_model, set_cache_pricing
from tokenhub_emulator import LedgerEntry, TokenHubEmulator
from tokenhub_emulator.caching import CacheUsage, Piece, PromptCache

# ~3000 tokens: above every model's minimum cacheable length but Haiku's and Opus 4.5/4.6's.
LONG = "The Orin valley keeps its own calendar of harvests and feasts. " * 190
EPHEMERAL = {"type": "ephemeral"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pieces(*spec: tuple[str, int, str | None]) -> list[Piece]:
    return [Piece(key.encode(), tokens, ttl) for key, tokens, ttl in spec]


# -- the cache on its own ----------------------------------------------------------------------


def test_a_prefix_is_written_then_read_and_expires_after_its_ttl() -> None:
    clock = _Clock()
    cache = PromptCache(clock)
    pieces = _pieces(("system", 2000, "5m"), ("question", 10, None))
    assert cache.use("k", pieces, 1024) == CacheUsage(10, write_5m=2000)
    clock.now += 299
    assert cache.use("k", pieces, 1024) == CacheUsage(10, read=2000)
    clock.now += 299  # the read refreshed the five minutes
    assert cache.use("k", pieces, 1024) == CacheUsage(10, read=2000)
    clock.now += 301
    assert cache.use("k", pieces, 1024) == CacheUsage(10, write_5m=2000)


def test_nothing_shorter_than_the_minimum_is_cached() -> None:
    cache = PromptCache(_Clock())
    pieces = _pieces(("system", 1000, "5m"), ("question", 10, None))
    for _ in range(2):
        assert cache.use("k", pieces, 1024) == CacheUsage(1010)


def test_later_breakpoints_write_only_what_earlier_ones_do_not_cover() -> None:
    cache = PromptCache(_Clock())
    first = _pieces(("tools", 1500, "1h"), ("system", 600, "5m"), ("q1", 20, None))
    assert cache.use("k", first, 1024) == CacheUsage(20, write_1h=1500, write_5m=600)
    changed = _pieces(("tools", 1500, "1h"), ("other system", 600, "5m"), ("q1", 20, None))
    assert cache.use("k", changed, 1024) == CacheUsage(20, read=1500, write_5m=600)


def test_a_breakpoint_finds_a_prefix_cached_up_to_twenty_pieces_back() -> None:
    cache = PromptCache(_Clock())
    turn = [("system", 2000, None), ("u1", 50, "5m")]
    cache.use("k", _pieces(*turn), 1024)
    grown = [*turn[:1], ("u1", 50, None), ("a1", 30, None), ("u2", 40, "5m")]
    assert cache.use("k", _pieces(*grown), 1024) == CacheUsage(0, read=2050, write_5m=70)
    far = [*turn, *((f"x{i}", 1, None) for i in range(20)), ("end", 1, "5m")]
    far[1] = ("u1", 50, None)
    assert cache.use("k", _pieces(*far), 1024).read == 0  # 21 pieces back: out of reach


def test_scopes_do_not_share_entries() -> None:
    cache = PromptCache(_Clock())
    pieces = _pieces(("system", 2000, "5m"))
    cache.use("key-a model", pieces, 1024)
    assert cache.use("key-b model", pieces, 1024).read == 0
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


# -- over HTTP ---------------------------------------------------------------------------------


def _cached_system(question: str, **params: Any) -> dict[str, Any]:
    system = [
        {"type": "text", "text": "You are the Orin valley archivist."},
        {"type": "text", "text": LONG, "cache_control": params.pop("control", EPHEMERAL)},
    ]
    return body(question, system=system, **params)


def _usage(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()["usage"]
    return usage


def test_a_repeated_system_prompt_is_read_from_the_cache(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    first = _usage(post(http, _cached_system("When is the feast?")))
    written = first["cache_creation_input_tokens"]
    assert written > 2048 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": written,
        "ephemeral_1h_input_tokens": 0,
    }
    second = _usage(post(http, _cached_system("Who keeps the calendar?")))
    assert second["cache_read_input_tokens"] == written
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] < 30  # only the new question is uncached
    ledger = tokenhub_emulator.ledger()
    assert [e.protocol for e in ledger.entries] == ["messages", "messages"]
    assert ledger.cache_write_tokens == ledger.cache_read_tokens == written
    assert ledger.entries[1].prompt_tokens == written + second["input_tokens"]


def _three_calls(emulator: TokenHubEmulator, http: httpx.Client) -> tuple[LedgerEntry, ...]:
    """A 5-minute write, its read, and a 1-hour write, as billed."""
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    for control in (EPHEMERAL, EPHEMERAL, one_hour):
        if control is one_hour:
            emulator.clear_cache()
        post(http, _cached_system("Hi", control=control))
    return emulator.ledger().entries


def _cost(entry: LedgerEntry, multiplier: Decimal) -> Decimal:
    info = resolve_model(entry.model)
    assert info is not None
    cached = entry.cache_read_tokens + entry.cache_write_tokens
    return (
        (entry.prompt_tokens - cached) * info.input_usd_per_mtok
        + cached * info.input_usd_per_mtok * multiplier
        + entry.completion_tokens * info.output_usd_per_mtok
    ) / 1_000_000


def test_the_ledger_prices_reads_at_a_tenth_and_writes_at_a_premium(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    write, read, write_1h = _three_calls(tokenhub_emulator, http)
    assert write.cache_write_tokens > 0 and read.cache_read_tokens == write.cache_write_tokens
    assert write_1h.cache_write_1h_tokens == write_1h.cache_write_tokens > 0
    assert write.cost_usd == _cost(write, Decimal("1.25"))
    assert read.cost_usd == _cost(read, Decimal("0.1"))
    assert write_1h.cost_usd == _cost(write_1h, Decimal(2))
    assert read.cost_usd < write.cost_usd / 5


def test_the_ledger_follows_the_catalogs_cache_prices(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    default = resolve_model(MODEL)
    assert default is not None
    set_cache_pricing(MODEL, read="0.5", write_5m="1", write_1h="3")
    try:
        write, read, write_1h = _three_calls(tokenhub_emulator, http)
    finally:
        set_cache_pricing(
            MODEL,
            read=default.cache_read_multiplier,
            write_5m=default.cache_write_5m_multiplier,
            write_1h=default.cache_write_1h_multiplier,
        )
    assert write.cost_usd == _cost(write, Decimal(1))
    assert read.cost_usd == _cost(read, Decimal("0.5"))
    assert write_1h.cost_usd == _cost(write_1h, Decimal(3))


def test_the_ttl_follows_the_emulator_clock(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    post(http, _cached_system("Hi"))
    tokenhub_emulator.advance_clock(240)
    assert _usage(post(http, _cached_system("Hi")))["cache_read_input_tokens"] > 0
    tokenhub_emulator.advance_clock(240)  # 480 s after the write, 240 after the read
    assert _usage(post(http, _cached_system("Hi")))["cache_read_input_tokens"] > 0
    tokenhub_emulator.advance_clock(301)
    expired = _usage(post(http, _cached_system("Hi")))
    assert expired["cache_read_input_tokens"] == 0 and expired["cache_creation_input_tokens"] > 0
    tokenhub_emulator.clear_cache()  # the same prefix would be read whatever its TTL
    hour = {"type": "ephemeral", "ttl": "1h"}
    written = _usage(post(http, _cached_system("Hi", control=hour)))
    assert written["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    tokenhub_emulator.advance_clock(3000)
    assert _usage(post(http, _cached_system("Hi", control=hour)))["cache_read_input_tokens"] > 0


def test_clear_cache_forgets_every_prefix(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    post(http, _cached_system("Hi"))
    assert tokenhub_emulator.clear_cache() == 1
    assert _usage(post(http, _cached_system("Hi")))["cache_read_input_tokens"] == 0


@pytest.mark.parametrize(
    ("model", "cached"),
    [("claude-sonnet-4-6", True), ("claude-haiku-4-5", False), ("claude-opus-4-6", False)],
)
def test_the_minimum_cacheable_length_is_the_models(
    http: httpx.Client, model: str, cached: bool
) -> None:
    for _ in range(2):
        usage = _usage(post(http, _cached_system("Hi", model=model)))
    if cached:
        assert usage["cache_read_input_tokens"] > 2048
    else:
        assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0


def test_the_cache_is_per_key_and_per_model(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    post(http, _cached_system("Hi"))
    other_key = {"x-api-key": "th-someone-else", "authorization": ""}
    assert _usage(post(http, _cached_system("Hi"), **other_key))["cache_read_input_tokens"] == 0
    other_model = _cached_system("Hi", model="claude-opus-4-7")
    assert _usage(post(http, other_model))["cache_read_input_tokens"] == 0
    same = _cached_system("Hi", model="anthropic/claude-sonnet-4-6")  # the same model
    assert _usage(post(http, same))["cache_read_input_tokens"] > 0


def test_tools_come_before_the_system_prompt_in_the_cached_prefix(http: httpx.Client) -> None:
    post(http, _cached_system("Hi", tools=[WEATHER]))
    renamed = {**WEATHER, "description": "The weather now."}
    assert _usage(post(http, _cached_system("Hi", tools=[renamed])))["cache_read_input_tokens"] == 0
    again = _usage(post(http, _cached_system("A different question", tools=[renamed])))
    assert again["cache_read_input_tokens"] > 0


def test_a_conversation_cached_at_its_newest_message_reads_the_last_turn(
    http: httpx.Client,
) -> None:
    def turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
        *earlier, last = messages
        marked = {
            **last,
            "content": [{"type": "text", "text": last["content"], "cache_control": EPHEMERAL}],
        }
        return {"model": MODEL, "max_tokens": 100, "system": LONG, "messages": [*earlier, marked]}

    history = [{"role": "user", "content": "When is the feast?"}]
    first = _usage(post(http, turn(history)))
    history += [
        {"role": "assistant", "content": "In late September."},
        {"role": "user", "content": "And the harvest?"},
    ]
    second = _usage(post(http, turn(history)))
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] > 0 and second["input_tokens"] == 0


def test_request_level_cache_control_marks_the_last_block(http: httpx.Client) -> None:
    data = body(LONG, cache_control=EPHEMERAL)
    first = _usage(post(http, data))
    assert first["input_tokens"] == 0 and first["cache_creation_input_tokens"] > 2048
    assert (
        _usage(post(http, data))["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    )


def test_totals_are_the_same_cached_or_not(http: httpx.Client) -> None:
    def total(usage: dict[str, Any]) -> int:
        return int(
            usage["input_tokens"]
            + usage["cache_creation_input_tokens"]
            + usage["cache_read_input_tokens"]
        )

    plain = body(
        "Hi",
        system=[
            {"type": "text", "text": "You are the Orin valley archivist."},
            {"type": "text", "text": LONG},
        ],
    )
    totals = {
        total(_usage(post(http, d))) for d in (plain, _cached_system("Hi"), _cached_system("Hi"))
    }
    assert len(totals) == 1


def test_a_breakpoint_inside_a_tool_result(http: httpx.Client) -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
    }
    data = {
        "model": MODEL,
        "max_tokens": 100,
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Orin?"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
    }
    written = _usage(post(http, data))["cache_creation_input_tokens"]
    assert written > 2048
    assert _usage(post(http, data))["cache_read_input_tokens"] == written
