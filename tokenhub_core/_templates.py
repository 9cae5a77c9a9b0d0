"""Pydantic objects made from a validated template, for the per-event path of a stream.

The frameworks' message and response classes validate on construction, and a streamed text
fragment pays that once or more per event: more than the rest of its path. A fragment's objects
differ from an already validated one only in a few values (the text, an id), so a shallow copy of
that template with those values set is the same object without the cost. Every value that holds
a container must be passed fresh, or the copies would share it; the adapters' tests hold each
copy equal, field for field, to the object validation builds.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["filled"]

_Model = TypeVar("_Model", bound=BaseModel)

# BaseModel's slots, set through their descriptors: object.__setattr__ first walks the class's
# bases to check it may bypass pydantic's own __setattr__, which costs more than the copy.
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__


def filled(template: _Model, **fields: Any) -> _Model:
    """A shallow copy of ``template`` (validated) with ``fields`` set, without validation.

    The copy keeps the template's record of fields set: validate the template with the same
    fields given as the copies will be.
    """
    private = template.__pydantic_private__
    if private:  # not in the templates the adapters use; pydantic's copy knows its rules
        model = template.__copy__()
        model.__dict__.update(fields)
        return model
    cls = type(template)
    model = cls.__new__(cls)
    state = template.__dict__.copy()
    state.update(fields)
    # What pydantic's own __copy__ sets, with the containers' own copy methods (copy.copy
    # dispatches generically, three times per object).
    extra = template.__pydantic_extra__
    _set_dict(model, state)
    _set_fields_set(model, template.__pydantic_fields_set__.copy())
    _set_extra(model, None if extra is None else extra.copy())
    _set_private(model, None)
    return model
