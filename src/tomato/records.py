"""Frozen record classes for the runtime's hot path, without dataclasses.

``dataclasses`` costs ~10 ms to import (it pulls in ``inspect``) and
compiles generated methods with ``exec`` for every class: more than the
whole budget of `tomato-runtime run`.  ``@record`` gives the same shape —
fields from annotations, defaults from class attributes, keyword or
positional construction, equality, repr, immutability, ``replace`` and
``as_dict`` — with generic methods and nothing compiled.

    @record
    class Mount:
        destination: str
        options: tuple[str, ...] = ()

Mutable defaults use ``field(default_factory=dict)``.  ``@record(frozen=False)``
makes a plain mutable record (for state that is built up step by step).

For the type checker, ``record`` and ``field`` are dataclasses' own (see the
end of this module), so mypy checks constructors as it does for dataclasses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy: always_true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

_MISSING = object()


class factory:  # noqa: N801 — reads as a field marker, like dataclasses.field
    """A default computed per instance: ``x: dict = factory(dict)``."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _fields_of(cls: type) -> tuple[tuple[str, Any], ...]:
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):
            if name.startswith("_"):
                continue
            fields[name] = klass.__dict__.get(name, fields.get(name, _MISSING))
    return tuple(fields.items())


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    fields = type(self).__record_fields__
    if len(args) > len(fields):
        raise TypeError(f"{type(self).__name__} takes {len(fields)} arguments")
    setter = object.__setattr__
    for i, (name, default) in enumerate(fields):
        if i < len(args):
            value = args[i]
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
        elif name in kwargs:
            value = kwargs.pop(name)
        elif default is _MISSING:
            raise TypeError(f"{type(self).__name__} missing argument {name!r}")
        elif isinstance(default, factory):
            value = default.make()
        else:
            value = default
        setter(self, name, value)
    if kwargs:  # every known name was popped above
        raise TypeError(f"{type(self).__name__} got unknown argument {next(iter(kwargs))!r}")


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in type(self).__record_fields__)
    return f"{type(self).__name__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n, _ in type(self).__record_fields__)


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n, _ in type(self).__record_fields__))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")


def replace(obj: T, **changes: Any) -> T:
    values = {n: getattr(obj, n) for n, _ in type(obj).__record_fields__}  # type: ignore[attr-defined]
    values.update(changes)
    return type(obj)(**values)


def as_dict(obj: Any) -> dict[str, Any]:
    """Fields as a dict, records inside converted recursively (like asdict)."""
    out = {}
    for name, _ in type(obj).__record_fields__:
        out[name] = _plain(getattr(obj, name))
    return out


_LEAVES = frozenset((str, int, float, bool, type(None)))


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:  # most of a spec: checked first, by exact type
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if hasattr(kind, "__record_fields__"):
        return as_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
           hash: bool | None = None, compare: bool = True, repr: bool = True) -> Any:  # noqa: A002
    """dataclasses.field's shape: a default, a default computed per instance, or
    neither (a required field).  hash/compare/repr are accepted for the type
    checker's sake; records compare and hash every field."""
    if default_factory is not None:
        return factory(default_factory)
    return default


def _record(cls: Any = None, *, frozen: bool = True) -> Any:
    def wrap(klass: type) -> type:
        fields = _fields_of(klass)
        for name, default in fields:  # class attributes would shadow nothing useful
            if default is not _MISSING and name in klass.__dict__:
                delattr(klass, name)
        klass.__record_fields__ = fields  # type: ignore[attr-defined]
        klass.__init__ = _init  # type: ignore[misc]
        klass.__repr__ = _repr  # type: ignore[assignment]
        klass.__eq__ = _eq  # type: ignore[assignment]
        if frozen:
            klass.__setattr__ = _frozen_setattr  # type: ignore[assignment]
            klass.__delattr__ = _frozen_setattr  # type: ignore[assignment]
            klass.__hash__ = _hash  # type: ignore[assignment]
        else:
            klass.__hash__ = None  # type: ignore[assignment]
        return klass

    return wrap(cls) if cls is not None else wrap


if TYPE_CHECKING:
    from dataclasses import dataclass as record
    from dataclasses import field
else:
    record = _record
    field = _field
