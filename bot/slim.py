"""Take from a webhook body only the fields our event models declare, without a full parse.

simdjson validates the whole document at GB/s and builds no Python objects for it;
only the fields named by the model (see `bot.events`) are turned into Python values.
The slim dict is what a job stores; the worker validates it with the model.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import simdjson
from pydantic import BaseModel

_Object = simdjson.Object
_Array = simdjson.Array


class NotAnObject(ValueError):
    """The body is not JSON, or not a JSON object."""


class MissingField(ValueError):
    """A field the model requires is absent or null; `path` names it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class Field:
    key: str
    required: bool
    nested: "Spec | None"  # a model: extract its fields
    many: bool  # a list of models


Spec = tuple[Field, ...]


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model an annotation holds (directly, optionally or as list items) and whether it is a list."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _model_in(arg)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        model, _ = _model_in(item)
        return model, model is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def spec_of(model: type[BaseModel]) -> Spec:
    """The fields to extract for a model, recursively (computed once per event type)."""
    fields = []
    for name, info in model.model_fields.items():
        nested_model, many = _model_in(info.annotation)
        nested = spec_of(nested_model) if nested_model is not None else None
        fields.append(Field(info.alias or name, info.is_required(), nested, many))
    return tuple(fields)


def _plain(value: Any) -> Any:
    if isinstance(value, _Object):
        return value.as_dict()
    if isinstance(value, _Array):
        return value.as_list()
    return value


def _extract(obj: Any, spec: Spec, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in spec:
        value = obj.get(field.key)
        if value is None:
            if field.required:
                raise MissingField(path + field.key)
            continue
        if field.nested is None:
            out[field.key] = _plain(value)
        elif field.many and isinstance(value, _Array):
            out[field.key] = [_extract(item, field.nested, f"{path}{field.key}.") if isinstance(item, _Object) else _plain(item)
                              for item in value]
        elif isinstance(value, _Object):
            out[field.key] = _extract(value, field.nested, f"{path}{field.key}.")
        else:
            out[field.key] = _plain(value)  # the wrong type: the model says so in the worker
    return out


class SlimParser:
    """One reusable simdjson parser; not shared between threads."""

    def __init__(self) -> None:
        self._parser = simdjson.Parser()

    def top_level(self, body: bytes) -> Any:
        """Parse and check the body is an object; the caller must drop the result before the next parse."""
        try:
            doc = self._parser.parse(body)
        except RuntimeError:
            # A document of the last parse is still referenced somewhere: use a fresh parser.
            self._parser = simdjson.Parser()
            return self.top_level(body)
        except ValueError as exc:
            raise NotAnObject("body is not valid JSON") from exc
        if not isinstance(doc, _Object):
            raise NotAnObject("body is not a JSON object")
        return doc

    def extract(self, doc: Any, spec: Spec) -> dict[str, Any]:
        """The fields of `spec` from a parsed document."""
        return _extract(doc, spec, "")
