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
    scalar: bool = False  # str, int, float or bool (optional or not): taken as simdjson gives it


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


SCALARS = (str, int, float, bool)


def _is_scalar(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(arg is type(None) or _is_scalar(arg) for arg in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, SCALARS)


def spec_of(model: type[BaseModel]) -> Spec:
    """The fields to extract for a model, recursively (computed once per event type)."""
    fields = []
    for name, info in model.model_fields.items():
        nested_model, many = _model_in(info.annotation)
        nested = spec_of(nested_model) if nested_model is not None else None
        fields.append(Field(info.alias or name, info.is_required(), nested, many, _is_scalar(info.annotation)))
    return tuple(fields)


def plain(value: Any) -> Any:
    """A simdjson value as plain Python (the `default` for orjson.dumps of extracted fields)."""
    if isinstance(value, _Object):
        return value.as_dict()
    if isinstance(value, _Array):
        return value.as_list()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cannot serialise {type(value).__name__}")


Extractor = typing.Callable[[Any], dict[str, Any]]


def compile_extractor(spec: Spec) -> Extractor:
    """A function taking the spec's fields out of a simdjson object.

    Generated once per event type, as dataclasses generates `__init__`: straight-line lookups
    cost half of walking the spec for every request, and pushes are the hot path.
    """
    lines: list[str] = []
    names = iter(range(1_000_000))

    def emit(fields: Spec, src: str, dst: str, path: str, pad: str) -> None:
        for field in fields:
            v = f"v{next(names)}"
            key = repr(field.key)
            lines.append(f"{pad}{v} = {src}.get({key})")
            lines.append(f"{pad}if {v} is None:")
            lines.append(f"{pad}    " + (f"raise MissingField({path + field.key!r})" if field.required else "pass"))
            if field.scalar:
                # An object where a scalar belongs stays a simdjson value: `dumps` turns it
                # plain, and the model refuses it in the worker.
                lines.append(f"{pad}else:")
                lines.append(f"{pad}    {dst}[{key}] = {v}")
                continue
            lines.append(f"{pad}elif {v}.__class__ is Obj:")
            if field.nested is not None and not field.many:
                sub = f"d{next(names)}"
                lines.append(f"{pad}    {sub} = {dst}[{key}] = {{}}")
                emit(field.nested, v, sub, f"{path}{field.key}.", pad + "    ")
            else:
                lines.append(f"{pad}    {dst}[{key}] = {v}.as_dict()")
            lines.append(f"{pad}elif {v}.__class__ is Arr:")
            if field.nested is not None and field.many:
                lines.append(f"{pad}    {dst}[{key}] = [extract_{id(field.nested)}(i) if i.__class__ is Obj else plain(i) for i in {v}]")
            else:
                lines.append(f"{pad}    {dst}[{key}] = {v}.as_list()")
            lines.append(f"{pad}else:")
            lines.append(f"{pad}    {dst}[{key}] = {v}")  # a scalar (or the wrong type: the model says so later)

    emit(spec, "doc", "out", "", "    ")
    namespace: dict[str, Any] = {"Obj": _Object, "Arr": _Array, "MissingField": MissingField, "plain": plain}
    for field in _list_fields(spec):
        namespace[f"extract_{id(field.nested)}"] = compile_extractor(field.nested)  # type: ignore[arg-type]
    source = "def extract(doc):\n    out = {}\n" + "\n".join(lines) + "\n    return out\n"
    exec(compile(source, "<bot.slim extractor>", "exec"), namespace)  # noqa: S102 - code built from our own models
    return namespace["extract"]


def _list_fields(spec: Spec) -> list[Field]:
    found = []
    for field in spec:
        if field.nested is not None:
            if field.many:
                found.append(field)
            else:
                found += _list_fields(field.nested)
    return found


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

    def extract(self, doc: Any, extractor: Extractor) -> dict[str, Any]:
        """The fields `extractor` takes (see `compile_extractor`) from a parsed document."""
        return extractor(doc)
