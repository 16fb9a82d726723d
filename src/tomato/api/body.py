"""Fields of a JSON request body, read with the type each one must have.

Docker decodes a body into Go structs, so a field of the wrong type is a 400
(``json: cannot unmarshal string into Go struct field ... of type int64``),
never a crash.  Handlers read bodies only through ``Fields``: a wrong type
anywhere is the same one-line 400 naming the field, in Go's words --
``json: cannot unmarshal string into field HostConfig.Memory of type int64``.
A missing field and null read as the default (Go's zero values).
"""

from __future__ import annotations

import math
from typing import Any

from tomato.errors import InvalidArgument

INT64 = 2**63


def kind(value: Any) -> str:
    """What Go's decoder calls a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Fields:
    """A JSON object of a request body (``where``: its path, for messages)."""

    def __init__(self, data: Any, where: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidArgument(f"json: cannot unmarshal {kind(data)} into "
                                  f"{where or 'the request body'} of type object")
        self.data: dict[str, Any] = data
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _bad(self, key: str, value: Any, want: str) -> InvalidArgument:
        return InvalidArgument(f"json: cannot unmarshal {kind(value)} into field "
                               f"{self._name(key)} of type {want}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, value, "string")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        return self._int(key, value)

    def optional_integer(self, key: str) -> int | None:
        value = self.data.get(key)
        return None if value is None else self._int(key, value)

    def _int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, value, "int64")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise InvalidArgument(f"json: cannot unmarshal number {value} into field "
                                      f"{self._name(key)} of type int64")
            value = int(value)
        number: int = value  # an int by now (a bool was refused above)
        if not -INT64 <= number < INT64:
            raise InvalidArgument(f"json: cannot unmarshal number {number} into field "
                                  f"{self._name(key)} of type int64")
        return number

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, value, "bool")
        return value

    def texts(self, key: str, lone: bool = False) -> list[str]:
        """An array of strings (``lone``: a single string too, as Docker's StrSlice)."""
        value = self.data.get(key)
        if value is None:
            return []
        if lone and isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise self._bad(key, value, "[]string")
        for item in value:
            if not isinstance(item, str):
                raise self._bad(key, item, "[]string")
        return list(value)

    def integers(self, key: str) -> list[int]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, value, "[]int")
        return [self._int(key, item) for item in value]

    def text_map(self, key: str) -> dict[str, str]:
        """An object of strings (labels, sysctls, driver options)."""
        value = self.obj(key).data
        for item in value.values():
            if not isinstance(item, str):
                raise self._bad(key, item, "map[string]string")
        return dict(value)

    def names(self, key: str) -> list[str]:
        """The keys of an object whose values are empty objects (ExposedPorts, Volumes)."""
        value = self.obj(key).data
        for item in value.values():
            if item is not None and not isinstance(item, dict):
                raise self._bad(key, item, "struct")
        return list(value)

    def obj(self, key: str) -> Fields:
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self._bad(key, value, "object")
        return Fields(value, self._name(key))

    def objs(self, key: str) -> list[Fields]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, value, "[]object")
        return [Fields(item, f"{self._name(key)}[{i}]") if isinstance(item, dict) or item is None
                else _raise(self._bad(key, item, "[]object")) for i, item in enumerate(value)]

    def obj_map(self, key: str) -> dict[str, Fields]:
        """An object of objects (EndpointsConfig)."""
        value = self.obj(key).data
        out = {}
        for name, item in value.items():
            if item is not None and not isinstance(item, dict):
                raise self._bad(key, item, "object")
            out[name] = Fields(item, f"{self._name(key)}.{name}")
        return out


def _raise(err: Exception) -> Any:
    raise err
