"""The TokenHub model catalog: ids, tiers, prices and limits, as data.

Prices come from the TokenHub price table (``shared/spec/tokenhub-api.md``). Context windows and
maximum output tokens are Anthropic's published figures for each model, as listed on the per-model
pages of platform.claude.com/docs/en/models and the Bedrock / Vertex AI model cards (read 2026-11);
the catalog uses the standard (non-beta) window of each model.

Prompt caching: TokenHub does not publish cache prices, so every model uses Anthropic's published
multipliers of the input price by default: a cache read costs 0.1x, a write to the 5-minute cache
1.25x, a write to the 1-hour cache 2x. `set_cache_pricing` changes them for a model.

Thinking modes (``thinking.type`` values a model takes) are Anthropic's: Opus 4.7 takes only
``adaptive``; Opus 4.6 and Sonnet 4.6 take ``adaptive`` and ``enabled``; the other 4.x models
only ``enabled``; the 3.5 models have no extended thinking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenhub_core.wire import Usage

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelInfo",
    "canonical_model_id",
    "cost_usd",
    "price_call",
    "price_usage",
    "resolve_model",
    "set_cache_pricing",
]

PROVIDER_PREFIX = "anthropic/"
DEFAULT_MODEL = "anthropic/claude-sonnet-4-6"
_PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelInfo:
    """One model TokenHub serves. Prices are USD per million tokens."""

    id: str
    tier: str
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    context_window: int
    max_output_tokens: int
    note: str
    supports_vision: bool = True
    supports_tools: bool = True
    thinking_modes: frozenset[str] = frozenset()
    cache_read_multiplier: Decimal = Decimal("0.1")
    cache_write_5m_multiplier: Decimal = Decimal("1.25")
    cache_write_1h_multiplier: Decimal = Decimal("2")

    @property
    def short_id(self) -> str:
        """The bare form of the id, without the ``anthropic/`` prefix."""
        return self.id.removeprefix(PROVIDER_PREFIX)

    @property
    def recommended(self) -> bool:
        return self.id == DEFAULT_MODEL

    def cost_usd(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_5m_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
    ) -> Decimal:
        """Exact USD cost of one call's usage.

        ``prompt_tokens`` is the whole prompt, cached parts included; the cache reads and writes
        among them are priced at this model's multipliers of the input price.
        """
        uncached = max(
            0, prompt_tokens - cache_read_tokens - cache_write_5m_tokens - cache_write_1h_tokens
        )
        weighted_input = (
            uncached
            + cache_read_tokens * self.cache_read_multiplier
            + cache_write_5m_tokens * self.cache_write_5m_multiplier
            + cache_write_1h_tokens * self.cache_write_1h_multiplier
        )
        return (
            weighted_input * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        ) / _PER_MILLION


_ADAPTIVE_ONLY = frozenset({"adaptive"})
_BOTH = frozenset({"adaptive", "enabled"})
_ENABLED = frozenset({"enabled"})
_NONE: frozenset[str] = frozenset()


def _model(
    id: str,
    tier: str,
    price_in: str,
    price_out: str,
    window: int,
    max_out: int,
    note: str,
    thinking: frozenset[str],
) -> ModelInfo:
    return ModelInfo(
        id,
        tier,
        Decimal(price_in),
        Decimal(price_out),
        window,
        max_out,
        note,
        thinking_modes=thinking,
    )


_K = 1_000
_M = 1_000_000

_TABLE: tuple[ModelInfo, ...] = (
    _model("anthropic/claude-opus-4-7", "Opus 4.7", "5.00", "25.00", _M, 128 * _K,
           "newest; best reasoning and coding", _ADAPTIVE_ONLY),
    _model("anthropic/claude-opus-4-6", "Opus 4.6", "5.00", "25.00", _M, 128 * _K,
           "best reasoning and coding", _BOTH),
    _model("anthropic/claude-sonnet-4-6", "Sonnet 4.6", "3.00", "15.00", _M, 128 * _K,
           "flagship balance of quality and cost (recommended default)", _BOTH),
    _model("anthropic/claude-haiku-4-5", "Haiku 4.5", "1.00", "5.00", 200 * _K, 64 * _K,
           "fastest, cheapest 4th generation; high QPS and classification", _ENABLED),
    _model("anthropic/claude-sonnet-4-5", "Sonnet 4.5", "3.00", "15.00", 200 * _K, 64 * _K,
           "previous general workhorse", _ENABLED),
    _model("anthropic/claude-opus-4-5", "Opus 4.5", "5.00", "25.00", 200 * _K, 64 * _K,
           "best reasoning and coding", _ENABLED),
    _model("anthropic/claude-4-sonnet", "Sonnet 4", "3.00", "15.00", 200 * _K, 64 * _K,
           "previous general workhorse", _ENABLED),
    _model("anthropic/claude-4-opus", "Opus 4", "15.00", "75.00", 200 * _K, 32 * _K,
           "best reasoning and coding", _ENABLED),
    _model("anthropic/claude-3-5-sonnet-latest", "3.5 Sonnet", "3.00", "15.00", 200 * _K, 8_192,
           "stable, production-proven, broad compatibility", _NONE),
    _model("anthropic/claude-3-5-haiku-latest", "3.5 Haiku", "0.80", "4.00", 200 * _K, 8_192,
           "stable, production-proven, broad compatibility", _NONE),
)  # fmt: skip


class Catalog(Mapping[str, ModelInfo]):
    """Read-only mapping of canonical model id to `ModelInfo`; renders as a table in notebooks."""

    def __init__(self, models: tuple[ModelInfo, ...]) -> None:
        self._by_id = {m.id: m for m in models}

    def __getitem__(self, model_id: str) -> ModelInfo:
        info = resolve_model(model_id)
        if info is None:
            raise KeyError(model_id)
        return info

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"Catalog({list(self._by_id)})"

    def _repr_html_(self) -> str:
        head = (
            "<tr><th>tier</th><th>model id</th><th>short id</th><th>input $/Mtok</th>"
            "<th>output $/Mtok</th><th>context window</th><th>max output</th></tr>"
        )
        rows = "".join(
            f"<tr><td>{escape(m.tier)}{' ★' if m.recommended else ''}</td>"
            f"<td><code>{escape(m.id)}</code></td><td><code>{escape(m.short_id)}</code></td>"
            f"<td>{m.input_usd_per_mtok:.2f}</td><td>{m.output_usd_per_mtok:.2f}</td>"
            f"<td>{m.context_window:,}</td><td>{m.max_output_tokens:,}</td></tr>"
            for m in self._by_id.values()
        )
        return (
            f"<table><thead>{head}</thead><tbody>{rows}</tbody></table><p>★ recommended default</p>"
        )


MODELS: Catalog = Catalog(_TABLE)


def canonical_model_id(model: str) -> str:
    """``claude-x`` and ``anthropic/claude-x`` both give ``anthropic/claude-x``."""
    if model.startswith(PROVIDER_PREFIX) or "/" in model:
        return model
    return PROVIDER_PREFIX + model


_DATED = re.compile(r"^(?P<base>.+?)-(?:20\d{6}|\d{8})$")


def resolve_model(model: str) -> ModelInfo | None:
    """The catalog entry for a model id, or None for a model the catalog does not know.

    Either id form works, and so does a dated snapshot id as servers report it
    (``claude-haiku-4-5-20251001`` is Haiku 4.5; ``claude-3-5-sonnet-20241022`` is the
    ``-latest`` alias's entry).
    """
    model_id = canonical_model_id(model)
    info = MODELS._by_id.get(model_id)
    if info is None and (dated := _DATED.match(model_id)):
        base = dated["base"]
        info = MODELS._by_id.get(base) or MODELS._by_id.get(base + "-latest")
    return info


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """Exact USD cost of a usage for ``model``; None when the catalog does not know the model."""
    info = resolve_model(model)
    return None if info is None else info.cost_usd(prompt_tokens, completion_tokens)


def price_call(
    requested_model: str,
    served_model: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cache_read_tokens: int = 0,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
) -> tuple[str, Decimal | None]:
    """The one pricing rule for a call: the model it is billed as, and its exact USD cost.

    A call is priced as the model the server says it served when the catalog knows that id
    (dated ids included), else as the model requested; the cost is None when the catalog knows
    neither. ``prompt_tokens`` is the whole prompt; the cache reads and writes among it are
    priced at the model's cache multipliers. Reply metadata, the cost meters and the emulator's
    ledger all use this function.
    """
    for model in (served_model, requested_model):
        if model and (info := resolve_model(model)) is not None:
            cost = info.cost_usd(
                prompt_tokens,
                completion_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_5m_tokens=cache_write_5m_tokens,
                cache_write_1h_tokens=cache_write_1h_tokens,
            )
            return info.id, cost
    model = served_model or requested_model
    return canonical_model_id(model) if model else requested_model, None


def price_usage(
    requested_model: str, served_model: str | None, usage: Usage
) -> tuple[str, Decimal | None]:
    """`price_call` for a reply's `Usage` (either protocol), cache reads and writes included."""
    return price_call(
        requested_model,
        served_model,
        usage.prompt_tokens,
        usage.completion_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_5m_tokens=usage.cache_creation_5m_tokens,
        cache_write_1h_tokens=usage.cache_creation_1h_tokens,
    )


def set_cache_pricing(
    model: str,
    *,
    read: Decimal | float | str | None = None,
    write_5m: Decimal | float | str | None = None,
    write_1h: Decimal | float | str | None = None,
) -> ModelInfo:
    """Change a model's prompt-cache prices, as multipliers of its input price.

    For when TokenHub publishes its own cache prices, or bills a model differently from
    Anthropic's defaults (read 0.1, 5-minute write 1.25, 1-hour write 2). Returns the new entry.

    Raises:
        KeyError: a model the catalog does not know.
        ValueError: a multiplier that is not a number >= 0.
    """
    info = resolve_model(model)
    if info is None:
        raise KeyError(model)
    changes: dict[str, Decimal] = {}
    for field, value in (
        ("cache_read_multiplier", read),
        ("cache_write_5m_multiplier", write_5m),
        ("cache_write_1h_multiplier", write_1h),
    ):
        if value is None:
            continue
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = Decimal("NaN")
        if isinstance(value, bool) or not number.is_finite() or number < 0:
            raise ValueError(f"{field} must be a number >= 0, got {value!r}")
        changes[field] = number
    updated = replace(info, **changes)  # type: ignore[arg-type]
    MODELS._by_id[info.id] = updated
    return updated
