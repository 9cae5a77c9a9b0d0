"""`tokenhub_core._templates.filled`: a validated model's copy with new values, unvalidated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, PrivateAttr

from tokenhub_core._templates import filled


class _Plain(BaseModel):
    text: str
    tags: list[str] = []


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class _Private(BaseModel):
    text: str
    _seen: list[str] = PrivateAttr(default_factory=list)


def test_a_filled_copy_is_the_model_validation_gives_and_leaves_the_template_alone() -> None:
    template = _Plain(text="", tags=[])
    copy = filled(template, text="hi", tags=["a"])
    assert copy == _Plain(text="hi", tags=["a"])
    assert copy.model_fields_set == {"text", "tags"}  # the template's: built with the same
    assert template == _Plain(text="", tags=[])

    bare = _Plain(text="")
    other = filled(bare, text="x")
    other.tags = ["z"]  # pydantic records the field as set: on the copy only
    assert other.model_fields_set == {"text", "tags"} and bare.model_fields_set == {"text"}


def test_extra_fields_and_private_attributes_are_copied_not_shared() -> None:
    open_template = _Open(text="", note={"k": 1})
    copy = filled(open_template, text="x")
    assert copy == _Open(text="x", note={"k": 1})
    copy.__pydantic_extra__["more"] = 2  # type: ignore[index]
    assert "more" not in (open_template.__pydantic_extra__ or {})

    private_template = _Private(text="")
    private_template._seen.append("template")
    copy_with_private = filled(private_template, text="y")
    assert copy_with_private.text == "y" and copy_with_private._seen == ["template"]
    copy_with_private._seen = ["mine"]
    assert private_template._seen == ["template"]
