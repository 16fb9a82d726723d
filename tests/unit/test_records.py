"""tomato.records behaves as dataclasses(frozen=True) does, or refuses loudly.

Each behaviour is checked on a record class and on the same class made with
dataclasses, so the substitute is held to what it replaces (on every Python
scripts/test.sh runs the unit tests with)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tomato import records
from tomato.records import as_dict, field, field_names, record, replace

SRC = Path(__file__).resolve().parents[2] / "src"


def _both(make: Any) -> list[Any]:
    """The class ``make(decorator, field)`` builds, once a record, once a dataclass."""
    return [make(record, records.field),
            make(lambda **kw: dataclasses.dataclass(frozen=kw.get("frozen", True)),
                 dataclasses.field)]


def _config(deco: Any, fld: Any) -> Any:
    @deco(frozen=True)
    class ImageConfig:
        digest: str
        size: int = 0
        raw: dict[str, Any] = fld(default_factory=dict, hash=False, compare=False)
        note: str = fld(default="", repr=False)

    return ImageConfig


@pytest.mark.parametrize("cls", _both(_config), ids=["record", "dataclass"])
def test_compare_false_fields_are_left_out_of_equality(cls: Any) -> None:
    a = cls("sha256:1", 2, {"a": 1})
    b = cls("sha256:1", 2, {"b": 2})
    assert a == b
    assert a != cls("sha256:2", 2, {"a": 1})
    assert (a == "sha256:1") is False


@pytest.mark.parametrize("cls", _both(_config), ids=["record", "dataclass"])
def test_hash_false_fields_are_left_out_of_hash(cls: Any) -> None:
    a = cls("sha256:1", 2, {"a": [1]})  # an unhashable value in a hash=False field
    assert hash(a) == hash(cls("sha256:1", 2, {"b": 2}))
    assert {a: 1}[cls("sha256:1", 2)] == 1


@pytest.mark.parametrize("cls", _both(_config), ids=["record", "dataclass"])
def test_repr_false_fields_are_not_shown(cls: Any) -> None:
    text = repr(cls("sha256:1", 2, {}, "secret"))
    assert "secret" not in text and "sha256:1" in text and "ImageConfig(" in text


def _mutable(deco: Any, fld: Any) -> Any:
    @deco(frozen=False)
    class State:
        status: str = "created"
        pid: int = 0
        tags: list[str] = fld(default_factory=list)

    return State


@pytest.mark.parametrize("cls", _both(_mutable), ids=["record", "dataclass"])
def test_mutable_records_are_unhashable_and_factories_fresh(cls: Any) -> None:
    a, b = cls(), cls()
    a.tags.append("x")
    assert b.tags == []
    a.status = "running"
    assert a.status == "running"
    with pytest.raises(TypeError):
        hash(a)


@pytest.mark.parametrize("cls", _both(_config), ids=["record", "dataclass"])
def test_frozen_records_refuse_assignment(cls: Any) -> None:
    a = cls("sha256:1")
    with pytest.raises(AttributeError):
        a.size = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.size


@pytest.mark.parametrize("cls", _both(_config), ids=["record", "dataclass"])
def test_construction_errors(cls: Any) -> None:
    assert cls("d", size=3).size == 3
    with pytest.raises(TypeError):
        cls()  # missing
    with pytest.raises(TypeError):
        cls("d", digest="e")  # twice
    with pytest.raises(TypeError):
        cls("d", sise=3)  # unknown (a typo is an error, never dropped)
    with pytest.raises(TypeError):
        cls("d", 1, {}, "", "one too many")


def test_mutable_default_is_refused_like_dataclasses() -> None:
    for deco in (record, dataclasses.dataclass):
        with pytest.raises(ValueError, match="mutable default"):
            @deco
            class Bad:
                items: list[str] = []  # noqa: RUF012


def test_non_default_after_default_is_refused_like_dataclasses() -> None:
    for deco in (record, dataclasses.dataclass):
        with pytest.raises(TypeError, match="non-default argument"):
            @deco
            class Bad:
                a: int = 0
                b: int


def test_dataclass_options_it_does_not_have_are_refused() -> None:
    with pytest.raises(TypeError):
        record(order=True)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        records.field(init=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        records.field(metadata={})  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        records.field(default=1, default_factory=int)


def test_classvars_and_private_names_are_not_fields() -> None:
    @record
    class WithClassVar:
        kinds: ClassVar[tuple[str, ...]] = ("a", "b")
        _cache: int = 0
        name: str = ""

    assert field_names(WithClassVar) == ("name",)
    assert WithClassVar.kinds == ("a", "b")
    assert WithClassVar(name="x").name == "x"


def test_inheritance_orders_base_fields_first() -> None:
    @record
    class Base:
        a: int
        b: str = ""
        c: dict[str, int] = field(default_factory=dict, compare=False)

    @record
    class Child(Base):
        d: int = 0

    assert field_names(Child) == ("a", "b", "c", "d")
    assert Child(1, "x", {"k": 1}, 4) == Child(1, "x", {}, 4)  # c stays compare=False


def test_replace_and_as_dict() -> None:
    @record
    class Inner:
        x: int

    @record
    class Outer:
        inner: Inner
        items: tuple[int, ...] = ()

    o = Outer(Inner(1), (1, 2))
    assert replace(o, items=(3,)) == Outer(Inner(1), (3,))
    assert replace(o, items=(3,)).inner is o.inner
    with pytest.raises(TypeError):
        replace(o, itmes=())
    assert as_dict(o) == {"inner": {"x": 1}, "items": [1, 2]}


def test_match_args() -> None:
    @record
    class Point:
        x: int
        y: int = 0

    match Point(1, 2):
        case Point(a, b):
            assert (a, b) == (1, 2)


def test_importing_records_imports_no_dataclasses_or_typing() -> None:
    """The reason it exists: on the start paths, dataclasses costs ~10 ms."""
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); import tomato.records; "
            "print(sorted(m for m in ('dataclasses', 'typing', 'inspect', 're') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"
