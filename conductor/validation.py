"""Reading the files a person gives conductor — stand-in scripts, plans, `conductor.toml` —
so that every mistake is one line naming the file and the field:

    script.yaml: roles.A[0][2].delay: expected a number of seconds, got 'soon'

A `Field` is where a value sits (the file, then keys and list indexes from 0, as in JSON
paths); its typed getters return the value or raise `InvalidInput` with that line. Unknown
keys are refused with the nearest known one ("did you mean max_parallel?").
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import yaml

from conductor.errors import InvalidInput

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SHOWN = 60  # characters of a bad value shown in an error


def shown(value: Any) -> str:
    """A value as an error shows it: Python's spelling, on one line, cut short when long."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):  # as YAML, JSON and TOML spell it
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The known name `word` is most likely a misspelling of, if any is close."""
    options = list(choices)
    for option in options:
        if option.lower() == word.lower():
            return option
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return found[0] if found else None


class Field:
    """Where a value sits: `str(field)` is `source: path` (or `source` at the top)."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def __str__(self) -> str:
        if not self.source:  # a field of data from no file (the planner's plan)
            return self.path
        return f"{self.source}: {self.path}" if self.path else self.source

    def key(self, name: Any) -> Field:
        text = str(name)
        if _PLAIN_KEY.match(text):
            return Field(self.source, f"{self.path}.{text}" if self.path else text)
        return Field(self.source, f"{self.path}[{text!r}]")

    def index(self, n: int) -> Field:
        return Field(self.source, f"{self.path}[{n}]")

    def error(self, message: str) -> InvalidInput:
        where = str(self)
        return InvalidInput((f"{where}: {message}" if where else message).replace("\n", " "))

    def fail(self, message: str) -> NoReturn:
        raise self.error(message)

    def expected(self, what: str, value: Any) -> NoReturn:
        self.fail(f"expected {what}, got {shown(value)}")

    # ------------------------------------------------------------------ typed getters

    def mapping(self, value: Any, what: str = "a mapping") -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            self.expected(what, value)
        return value

    def items(self, value: Any, what: str = "a list", *, non_empty: bool = False) -> Sequence[Any]:
        if not isinstance(value, list | tuple) or (non_empty and not value):
            self.expected(what, value)
        return value

    def string(self, value: Any, what: str = "a string", *, non_empty: bool = False) -> str:
        if not isinstance(value, str) or (non_empty and not value.strip()):
            self.expected(what, value)
        return value

    def strings(self, value: Any, what: str = "a list of strings") -> tuple[str, ...]:
        items = self.items(value, what)
        return tuple(
            self.index(n).string(v, "a non-empty string", non_empty=True)
            for n, v in enumerate(items)
        )

    def boolean(self, value: Any, what: str = "true or false") -> bool:
        if not isinstance(value, bool):
            self.expected(what, value)
        return value

    def integer(
        self,
        value: Any,
        what: str = "a whole number",
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.expected(what + _range(minimum, maximum), value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.expected(what + _range(minimum, maximum), value)
        return value

    def number(
        self,
        value: Any,
        what: str = "a number",
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
    ) -> float:
        """A finite int or float; `minimum`/`maximum` are inclusive, `above` exclusive."""
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            ok = False
        if ok and minimum is not None and value < minimum:
            ok = False
        if ok and maximum is not None and value > maximum:
            ok = False
        if ok and above is not None and value <= above:
            ok = False
        if not ok:
            self.expected(what + _range(minimum, maximum, above), value)
        return float(value)

    def one_of(self, value: Any, choices: Iterable[str], what: str = "one of") -> str:
        options = list(choices)
        if isinstance(value, str) and value in options:
            return value
        guess = did_you_mean(value, options) if isinstance(value, str) else None
        hint = f"; did you mean {guess}?" if guess else ""
        self.fail(f"expected {what} {', '.join(options)}, got {shown(value)}{hint}")

    def known_keys(self, data: Mapping[Any, Any], allowed: Iterable[str], what: str) -> None:
        """Refuse the first key not in `allowed`, with the nearest known one or the list;
        `what` names them ("key of a step", "setting")."""
        known = list(allowed)
        for key in data:
            if isinstance(key, str) and key in known:
                continue
            guess = did_you_mean(key, known) if isinstance(key, str) else None
            hint = f"; did you mean {guess}?" if guess else f" (known: {', '.join(known)})"
            self.key(key).fail(f"unknown {what}{hint}")


def _range(minimum: float | None, maximum: float | None, above: float | None = None) -> str:
    def num(x: float) -> str:
        return f"{x:g}"

    low = f"more than {num(above)}" if above is not None else None
    if minimum is not None and maximum is not None:
        return f" from {num(minimum)} to {num(maximum)}"
    if low and maximum is not None:
        return f" {low} and at most {num(maximum)}"
    if low:
        return f" {low}"
    if minimum is not None:
        return f", {num(minimum)} or more"
    if maximum is not None:
        return f", at most {num(maximum)}"
    return ""


# ------------------------------------------------------------------------------ declared data

Reader = Callable[["Field", Any], Any]  # (where the value sits, the value) -> the value read
READ = "read"
_MISSING: Any = dataclasses.MISSING


def declared(
    read: Reader,
    *,
    default: Any = _MISSING,
    required: bool | None = None,
    **schema: Any,
) -> Any:
    """A field of a shape read from a file (a dataclass field): its default, how a given
    value is read and checked (`read` raises InvalidInput naming the field), and what its
    JSON schema says beyond its type (a `description`, `minItems`). `required`: whether the
    schema asks for it; by default, when it has no default."""
    metadata = {READ: read, "schema": schema, "required": required}
    return dataclasses.field(default=default, metadata=metadata)


T = TypeVar("T")


@typing.dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, declared))
def shape(cls: type[T]) -> type[T]:
    """A declared shape: a frozen dataclass whose fields (`declared`) say how each is read
    and what the JSON schema says of it, so the shape is described once."""
    return dataclasses.dataclass(frozen=True)(cls)


def readers(shape: type) -> dict[str, Reader]:
    """How each field of a declared shape is read, by name, in the order declared."""
    return {f.name: f.metadata[READ] for f in dataclasses.fields(shape)}


def is_required(field: dataclasses.Field[Any]) -> bool:
    """Whether a declared field must be given (the schema's `required`)."""
    required = field.metadata.get("required")
    if required is None:
        return field.default is _MISSING and field.default_factory is _MISSING
    return bool(required)


def json_schema(shape: type) -> dict[str, Any]:
    """The JSON schema of a declared dataclass: its fields' types (str, int, float, bool, a
    tuple of one of those or of a declared dataclass), what each field declares, its required
    fields, and no other keys."""
    hints = typing.get_type_hints(shape)
    properties = {
        f.name: {**_json_type(hints[f.name]), **f.metadata.get("schema", {})}
        for f in dataclasses.fields(shape)
    }
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in dataclasses.fields(shape) if is_required(f)],
        "additionalProperties": False,
    }


_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(hint: Any) -> dict[str, Any]:
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if typing.get_origin(hint) is tuple:
        return {"type": "array", "items": _json_type(typing.get_args(hint)[0])}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return json_schema(hint)
    raise TypeError(f"no JSON schema for {hint!r}")


# ------------------------------------------------------------------------------ YAML


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    one silently: a second `A:` role would replace the first)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: the constructor below says so
            duplicate = False
        if duplicate:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", mark
            )
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml(text: str, source: str) -> Any:
    """YAML (or JSON, which is YAML) as data; a syntax error is one line with where it is."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # the safe loader, stricter
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(e.problem or e.context or "malformed").split())
        raise InvalidInput(f"{source} is not valid YAML: {where}{problem}") from None
    except yaml.YAMLError as e:
        raise InvalidInput(f"{source} is not valid YAML: {' '.join(str(e).split())}") from None
