"""The TokenHub model catalog: ids, tiers, prices and limits, as data.

Prices come from the TokenHub price table (``shared/spec/tokenhub-api.md``). Context windows and
maximum output tokens are Anthropic's published figures for each model, as listed on the per-model
pages of platform.claude.com/docs/en/models and the Bedrock / Vertex AI model cards (read 2026-11);
the catalog uses the standard (non-beta) window of each model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from html import escape

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelInfo",
    "canonical_model_id",
    "cost_usd",
    "price_call",
    "resolve_model",
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

    @property
    def short_id(self) -> str:
        """The bare form of the id, without the ``anthropic/`` prefix."""
        return self.id.removeprefix(PROVIDER_PREFIX)

    @property
    def recommended(self) -> bool:
        return self.id == DEFAULT_MODEL

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Exact USD cost of one call's usage."""
        return (
            prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        ) / _PER_MILLION


def _model(
    id: str, tier: str, price_in: str, price_out: str, window: int, max_out: int, note: str
) -> ModelInfo:
    return ModelInfo(id, tier, Decimal(price_in), Decimal(price_out), window, max_out, note)


_K = 1_000
_M = 1_000_000

_TABLE: tuple[ModelInfo, ...] = (
    _model("anthropic/claude-opus-4-7", "Opus 4.7", "5.00", "25.00", _M, 128 * _K,
           "newest; best reasoning and coding"),
    _model("anthropic/claude-opus-4-6", "Opus 4.6", "5.00", "25.00", _M, 128 * _K,
           "best reasoning and coding"),
    _model("anthropic/claude-sonnet-4-6", "Sonnet 4.6", "3.00", "15.00", _M, 128 * _K,
           "flagship balance of quality and cost (recommended default)"),
    _model("anthropic/claude-haiku-4-5", "Haiku 4.5", "1.00", "5.00", 200 * _K, 64 * _K,
           "fastest, cheapest 4th generation; high QPS and classification"),
    _model("anthropic/claude-sonnet-4-5", "Sonnet 4.5", "3.00", "15.00", 200 * _K, 64 * _K,
           "previous general workhorse"),
    _model("anthropic/claude-opus-4-5", "Opus 4.5", "5.00", "25.00", 200 * _K, 64 * _K,
           "best reasoning and coding"),
    _model("anthropic/claude-4-sonnet", "Sonnet 4", "3.00", "15.00", 200 * _K, 64 * _K,
           "previous general workhorse"),
    _model("anthropic/claude-4-opus", "Opus 4", "15.00", "75.00", 200 * _K, 32 * _K,
           "best reasoning and coding"),
    _model("anthropic/claude-3-5-sonnet-latest", "3.5 Sonnet", "3.00", "15.00", 200 * _K, 8_192,
           "stable, production-proven, broad compatibility"),
    _model("anthropic/claude-3-5-haiku-latest", "3.5 Haiku", "0.80", "4.00", 200 * _K, 8_192,
           "stable, production-proven, broad compatibility"),
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
    requested_model: str, served_model: str | None, prompt_tokens: int, completion_tokens: int
) -> tuple[str, Decimal | None]:
    """The one pricing rule for a call: the model it is billed as, and its exact USD cost.

    A call is priced as the model the server says it served when the catalog knows that id
    (dated ids included), else as the model requested; the cost is None when the catalog knows
    neither. Reply metadata, the cost meters and the emulator's ledger all use this function.
    """
    for model in (served_model, requested_model):
        if model and (info := resolve_model(model)) is not None:
            return info.id, info.cost_usd(prompt_tokens, completion_tokens)
    model = served_model or requested_model
    return canonical_model_id(model) if model else requested_model, None
