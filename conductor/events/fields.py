"""How a stored JSON value becomes a payload field of its declared type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# A payload is JSON a session's process may have influenced (a tool input, a model's text):
# every field is read by its declared type, and a value of another type reads as the default.


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def blocks(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return [dict(b) for b in value if isinstance(b, Mapping)]


def _list_of(kind: type) -> Callable[[Any], list[Any] | None]:
    def read(value: Any) -> list[Any] | None:
        if not isinstance(value, list):
            return None
        return [v for v in value if isinstance(v, kind) and not isinstance(v, bool)]

    return read


def _str_map(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


# A field's declared type (as written: annotations are strings here) -> how a JSON value
# becomes it; None means "not that type", and the field takes its default.
_READERS: dict[str, Callable[[Any], Any]] = {
    "str": lambda v: v if isinstance(v, str) else None,
    "bool": lambda v: v if isinstance(v, bool) else None,
    "int": _int,
    "float": _float,
    "list[int]": _list_of(int),
    "list[str]": _list_of(str),
    "dict[str, str]": _str_map,
    "dict[str, Any]": mapping,
    "list[dict[str, Any]]": blocks,
    "Any": lambda v: v,
}


def reader(annotation: str) -> Callable[[Any], Any]:
    return _READERS[annotation.removesuffix(" | None")]
