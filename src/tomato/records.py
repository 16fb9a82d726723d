"""Record classes for the start paths, without dataclasses.

``dataclasses`` costs ~10 ms to import (it pulls in ``inspect``) and
compiles generated methods with ``exec`` for every class: more than the
whole budget of `tomato-runtime run`.  ``@record`` gives dataclasses' shape
with generic methods and nothing compiled, for the modules that `tomato run`
and `tomato-runtime run` import; everything else uses dataclasses itself.

    @record
    class Mount:
        destination: str
        options: tuple[str, ...] = ()

What it does as ``@dataclass(frozen=True)`` does (tests/unit/test_records.py
holds it to that, on every supported Python):

- fields from annotations (base classes' first), defaults from class
  attributes, ``field(default_factory=...)`` for a default made per instance;
  ``ClassVar`` annotations and names starting with ``_`` are not fields;
- construction by position or keyword, with the same errors for a missing,
  doubled or unknown argument;
- ``==`` over the fields whose ``compare`` is true, ``repr`` over those whose
  ``repr`` is true; ``hash()`` of a frozen record over the fields whose
  ``hash`` (or, when None, ``compare``) is true; a mutable record
  (``@record(frozen=False)``) is unhashable, as a dataclass with ``eq``;
- a mutable default (a list, a dict, a set...) is refused with ValueError;
- ``replace(obj, **changes)`` and ``as_dict(obj)`` (as dataclasses.replace
  and asdict, except that tuples become lists: what json writes anyway).

The one difference on purpose: ``@record`` alone is frozen (dataclasses'
default is not).  Anything else of dataclasses' (``order``, ``slots``,
``kw_only``, ``init=False``, ``metadata``...) is refused with TypeError
rather than silently ignored.

For the type checker ``record`` is a dataclass transform with frozen
records by default and ``field`` is dataclasses' own (the end of this module).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy: always_true
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

_MISSING = object()


class _Field:
    """What ``field()`` leaves on the class until ``@record`` reads it."""

    __slots__ = ("default", "factory", "compare", "hash", "repr")

    def __init__(self, default: Any, factory: Callable[[], Any] | None, compare: bool,
                 hash: bool | None, repr: bool) -> None:  # noqa: A002
        self.default = default
        self.factory = factory
        self.compare = compare
        self.hash = hash
        self.repr = repr


class factory:  # noqa: N801 — reads as a field marker, like dataclasses.field
    """A default computed per instance, as stored in ``__record_fields__``."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
           compare: bool = True, hash: bool | None = None,  # noqa: A002
           repr: bool = True) -> Any:  # noqa: A002
    """dataclasses.field: a default, a default computed per instance, or neither (a
    required field); ``compare``, ``hash`` and ``repr`` as dataclasses take them.
    Any other keyword of dataclasses.field is a TypeError here."""
    if default is not _MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, compare, hash, repr)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _fields_of(cls: type) -> dict[str, Any]:
    """name -> the default (or a _Field), base classes' first, as dataclasses orders."""
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        spec = klass.__dict__.get("__record_spec__")
        if spec is not None and klass is not cls:  # a record base: its fields as made
            fields.update(spec)
            continue
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or _is_classvar(annotation):
                continue
            fields[name] = klass.__dict__.get(name, fields.get(name, _MISSING))
    return fields


def _check_default(cls: type, name: str, default: Any) -> None:
    if default is not _MISSING and type(default).__hash__ is None:
        raise ValueError(f"mutable default {type(default)} for field {name} of "
                         f"{cls.__name__} is not allowed: use default_factory")


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
        elif type(default) is factory:
            value = default.make()
        else:
            value = default
        setter(self, name, value)
    if kwargs:  # every known name was popped above
        raise TypeError(f"{type(self).__name__} got unknown argument {next(iter(kwargs))!r}")


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_repr__)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in type(self).__record_compare__)


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in type(self).__record_hash__))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name}")


def field_names(cls: type) -> tuple[str, ...]:
    """The fields of a record class (or of a record's class), in order."""
    return tuple(name for name, _ in cls.__record_fields__)  # type: ignore[attr-defined]


def replace(obj: T, **changes: Any) -> T:
    values = {n: getattr(obj, n) for n, _ in type(obj).__record_fields__}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def as_dict(obj: Any) -> dict[str, Any]:
    """Fields as a dict, records inside converted recursively (dataclasses.asdict, but
    tuples become lists)."""
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


def _record(cls: Any = None, *, frozen: bool = True) -> Any:
    def wrap(klass: type) -> type:
        spec = _fields_of(klass)
        init: list[tuple[str, Any]] = []
        compare, hashed, shown = [], [], []
        for name, value in spec.items():
            if isinstance(value, _Field):
                opts = value
                default = factory(value.factory) if value.factory is not None else value.default
            else:
                opts, default = None, value
            if not isinstance(default, factory):
                _check_default(klass, name, default)
            if name in klass.__dict__:  # the class attribute would shadow nothing useful
                delattr(klass, name)
            init.append((name, default))
            if opts is None or opts.compare:
                compare.append(name)
            if opts is None or (opts.hash if opts.hash is not None else opts.compare):
                hashed.append(name)
            if opts is None or opts.repr:
                shown.append(name)
        seen_default = ""
        for name, default in init:
            if default is not _MISSING:
                seen_default = name
            elif seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument "
                                f"{seen_default!r}")
        klass.__record_spec__ = spec  # type: ignore[attr-defined]
        klass.__record_fields__ = tuple(init)  # type: ignore[attr-defined]
        klass.__record_compare__ = tuple(compare)  # type: ignore[attr-defined]
        klass.__record_hash__ = tuple(hashed)  # type: ignore[attr-defined]
        klass.__record_repr__ = tuple(shown)  # type: ignore[attr-defined]
        setattr(klass, "__match_args__", tuple(name for name, _ in init))  # noqa: B010
        klass.__init__ = _init  # type: ignore[misc]
        klass.__repr__ = _repr  # type: ignore[assignment]
        klass.__eq__ = _eq  # type: ignore[assignment]
        if frozen:
            klass.__setattr__ = _frozen_setattr  # type: ignore[assignment]
            klass.__delattr__ = _frozen_delattr  # type: ignore[assignment]
            klass.__hash__ = _hash  # type: ignore[assignment]
        else:
            klass.__hash__ = None  # type: ignore[assignment]
        return klass

    return wrap(cls) if cls is not None else wrap


if TYPE_CHECKING:
    from dataclasses import field
    from typing import overload

    from typing_extensions import dataclass_transform

    @overload
    def record(cls: type[T], /) -> type[T]: ...

    @overload
    def record(*, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def record(cls: Any = None, /, *, frozen: bool = True) -> Any:
        return _record(cls, frozen=frozen)
else:
    record = _record
    field = _field
