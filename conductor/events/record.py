"""`Record`: a frozen, dataclass-like base for the payload types, made without `@dataclass`.

Every hand command (`conductor sync` from a session's Bash) writes events, so it imports the
payload types. `@dataclass(frozen=True)` writes and compiles six methods per class: for the
catalogue's ~27 types that was 14 ms of every hand command's ~65. A `Record` subclass gets
the same behaviour (an `__init__` taking the fields in order or by name, defaults and default
factories, equality, a hash, a repr, no assignment after construction) from methods shared by
all of them; `dataclass_transform` tells type checkers the subclasses are dataclass-like, so
their constructors are checked as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError, field
from dataclasses import Field as DeclaredField
from typing import Any, ClassVar, NamedTuple, dataclass_transform


class RecordField(NamedTuple):
    name: str
    type: str  # the annotation as written (annotations are strings: `from __future__`)
    default: Any = MISSING
    factory: Callable[[], Any] | None = None

    def value(self) -> Any:
        return self.factory() if self.factory is not None else self.default


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """Fields are the class's annotated attributes (not ClassVars), inherited ones first."""

    record_fields: ClassVar[tuple[RecordField, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = []
        # The class's own annotations (not `inspect.get_annotations`: importing inspect costs
        # a hand command more than this whole module saves).
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, annotation in annotations.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            declared = cls.__dict__.get(name, MISSING)
            if isinstance(declared, DeclaredField):  # field(default_factory=...)
                own.append(RecordField(name, str(annotation), declared.default, _factory(declared)))
                delattr(cls, name)  # an instance always has its own value
            else:
                own.append(RecordField(name, str(annotation), declared))
        inherited = [f for f in cls.record_fields if f.name not in {o.name for o in own}]
        cls.record_fields = (*inherited, *own)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = type(self).record_fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, got {len(args)}")
        given = dict(zip((f.name for f in fields), args, strict=False))
        for name, value in kwargs.items():
            if name in given or name not in {f.name for f in fields}:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {name!r}")
            given[name] = value
        for f in fields:
            value = given[f.name] if f.name in given else f.value()
            if value is MISSING:
                raise TypeError(f"{type(self).__name__}: missing field {f.name!r}")
            object.__setattr__(self, f.name, value)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self.record_fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self.values() == other.values()

    def __hash__(self) -> int:
        return hash(self.values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.record_fields)
        return f"{type(self).__name__}({shown})"


def _factory(declared: Any) -> Callable[[], Any] | None:
    factory = declared.default_factory
    return None if factory is MISSING else factory
