"""Typed fields of a decoded profile document: each reader checks one field and raises :class:`ProfileError` naming
it (``stages[3].latency_ms.p10: missing``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ProfileError",
    "expect_obj",
    "get_field",
    "num_item",
    "int_item",
    "num_field",
    "int_field",
    "nums_field",
    "ints_field",
    "str_field",
    "bool_field",
    "list_field",
    "strs_field",
]


class ProfileError(ValueError):
    """A profile file is malformed, or of a schema version this Shoal does not read. The message names the field."""


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def expect_obj(d: Any, where: str) -> None:
    if not isinstance(d, Mapping):
        raise ProfileError(f"{where}: expected an object, got {_type_name(d)}")


def get_field(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ProfileError(f"{_path(where, key)}: missing")
    return d[key]


def _path(where: str, key: str) -> str:
    return key if where == "profile" else f"{where}.{key}"


def num_item(v: Any, path: str, lo: float | None = None, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProfileError(f"{path}: expected a finite number, got {v!r}")
    if lo is not None and (v <= lo if strict else v < lo):
        raise ProfileError(f"{path}: must be {'>' if strict else '>='} {lo:g}, got {v!r}")
    return float(v)


def int_item(v: Any, path: str, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"{path}: expected an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ProfileError(f"{path}: must be >= {lo}, got {v!r}")
    return v


def num_field(d: Mapping[str, Any], key: str, where: str, lo: float | None = None, strict: bool = False) -> float:
    return num_item(get_field(d, key, where), _path(where, key), lo, strict)


def int_field(d: Mapping[str, Any], key: str, where: str, lo: int | None = None) -> int:
    return int_item(get_field(d, key, where), _path(where, key), lo)


def str_field(d: Mapping[str, Any], key: str, where: str) -> str:
    v = get_field(d, key, where)
    if not isinstance(v, str):
        raise ProfileError(f"{_path(where, key)}: expected a string, got {_type_name(v)}")
    return v


def bool_field(d: Mapping[str, Any], key: str, where: str) -> bool:
    v = get_field(d, key, where)
    if not isinstance(v, bool):
        raise ProfileError(f"{_path(where, key)}: expected true or false, got {v!r}")
    return v


def list_field(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    v = get_field(d, key, where)
    if not isinstance(v, list):
        raise ProfileError(f"{_path(where, key)}: expected a list, got {_type_name(v)}")
    return v


def strs_field(d: Mapping[str, Any], key: str, where: str) -> list[str]:
    items = list_field(d, key, where)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise ProfileError(f"{_path(where, key)}[{i}]: expected a string, got {_type_name(v)}")
    return items


def nums_field(d: Mapping[str, Any], key: str, where: str) -> list[float]:
    return [num_item(v, f"{_path(where, key)}[{i}]") for i, v in enumerate(list_field(d, key, where))]


def ints_field(d: Mapping[str, Any], key: str, where: str) -> list[int]:
    return [int_item(v, f"{_path(where, key)}[{i}]") for i, v in enumerate(list_field(d, key, where))]
