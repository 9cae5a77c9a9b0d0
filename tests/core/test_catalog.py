from decimal import Decimal

import pytest

from tokenhub_core import DEFAULT_MODEL, MODELS, cost_usd, resolve_model
from tokenhub_core.catalog import canonical_model_id

# The spec's price table (shared/spec/tokenhub-api.md): id, tier, input, output USD per 1M tokens.
SPEC_PRICES = [
    ("anthropic/claude-opus-4-7", "Opus 4.7", "5.00", "25.00"),
    ("anthropic/claude-opus-4-6", "Opus 4.6", "5.00", "25.00"),
    ("anthropic/claude-sonnet-4-6", "Sonnet 4.6", "3.00", "15.00"),
    ("anthropic/claude-haiku-4-5", "Haiku 4.5", "1.00", "5.00"),
    ("anthropic/claude-sonnet-4-5", "Sonnet 4.5", "3.00", "15.00"),
    ("anthropic/claude-opus-4-5", "Opus 4.5", "5.00", "25.00"),
    ("anthropic/claude-4-sonnet", "Sonnet 4", "3.00", "15.00"),
    ("anthropic/claude-4-opus", "Opus 4", "15.00", "75.00"),
    ("anthropic/claude-3-5-sonnet-latest", "3.5 Sonnet", "3.00", "15.00"),
    ("anthropic/claude-3-5-haiku-latest", "3.5 Haiku", "0.80", "4.00"),
]


@pytest.mark.parametrize(("model_id", "tier", "price_in", "price_out"), SPEC_PRICES)
def test_every_spec_model_is_in_the_catalog_with_its_price(
    model_id: str, tier: str, price_in: str, price_out: str
) -> None:
    info = resolve_model(model_id)
    assert info is not None
    assert (info.tier, info.input_usd_per_mtok, info.output_usd_per_mtok) == (
        tier,
        Decimal(price_in),
        Decimal(price_out),
    )
    assert info.context_window >= 200_000
    assert 0 < info.max_output_tokens <= 128_000
    assert info.supports_vision and info.supports_tools


def test_catalog_holds_exactly_the_spec_models() -> None:
    assert list(MODELS) == [row[0] for row in SPEC_PRICES]
    assert len(MODELS) == 10


def test_both_id_forms_resolve_to_the_same_entry() -> None:
    assert resolve_model("claude-sonnet-4-6") is resolve_model("anthropic/claude-sonnet-4-6")
    assert MODELS["claude-haiku-4-5"].id == "anthropic/claude-haiku-4-5"
    assert canonical_model_id("claude-4-opus") == "anthropic/claude-4-opus"


def test_unknown_model_resolves_to_none_and_has_no_cost() -> None:
    assert resolve_model("claude-sonnet-9") is None
    assert resolve_model("openai/gpt-5") is None
    assert cost_usd("claude-sonnet-9", 10, 10) is None
    with pytest.raises(KeyError):
        MODELS["claude-sonnet-9"]


def test_recommended_default_is_sonnet_4_6() -> None:
    assert DEFAULT_MODEL == "anthropic/claude-sonnet-4-6"
    assert [m.id for m in MODELS.values() if m.recommended] == [DEFAULT_MODEL]
    assert MODELS[DEFAULT_MODEL].short_id == "claude-sonnet-4-6"


def test_cost_is_exact() -> None:
    assert cost_usd("claude-sonnet-4-6", 1_000_000, 1_000_000) == Decimal("18")
    assert cost_usd("claude-3-5-haiku-latest", 1, 1) == Decimal("0.0000048")
    # A thousand small calls add up with no float drift.
    total = sum((cost_usd("claude-haiku-4-5", 7, 3) or Decimal(0)) for _ in range(1000))
    assert total == Decimal("0.022")


def test_catalog_is_read_only_data() -> None:
    info = MODELS[DEFAULT_MODEL]
    with pytest.raises(AttributeError):
        info.tier = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MODELS["x"] = info  # type: ignore[index]


def test_catalog_renders_as_an_html_table_in_notebooks() -> None:
    html = MODELS._repr_html_()
    assert html.count("<tr>") == 11
    for model in MODELS.values():
        assert model.id in html and model.short_id in html
    assert "★" in html
