"""Helpers for the example tests: import an example file by path, and run an app with its models loaded once."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import shoal
from shoal.app import INPUT, run_stages
from shoal.app.execute import run_batch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/NAME.py`` as ``shoal serve`` does (by path, its folder on ``sys.path``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"shoal_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Loaded:
    """An app whose stages' ``load`` ran once, so that it can be run on many inputs without rebuilding models.

    ``run`` is what ``App.run`` does; ``run_batch`` is what a batching instance does (see ``shoal.app.execute``).
    """

    def __init__(self, app: shoal.App) -> None:
        self.app = app
        self.states = {n: s.load() for n, s in app.stages.items() if s.load is not None}

    def run(self, x: Any) -> Any:
        return run_stages(self.app, list(self.app.stages), {INPUT: x}, self.states)[self.app.sink]

    def run_batch(self, xs: Sequence[Any]) -> list[Any]:
        out = []
        for values, _ in run_batch(self.app, list(self.app.stages), [{INPUT: x} for x in xs], self.states):
            if isinstance(values, Exception):
                raise values
            out.append(values[self.app.sink])
        return out


def assert_same(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Equal structure; arrays equal (floats within tolerance)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for k in a:
            assert_same(a[k], b[k], rtol, atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, rtol, atol)
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape and x.dtype == y.dtype
        if x.dtype.kind in "fc":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="session")
def example() -> Callable[[str], ModuleType]:
    return load_example


@pytest.fixture(scope="session")
def loaded() -> type[Loaded]:
    return Loaded


@pytest.fixture(scope="session")
def same() -> Callable[..., None]:
    return assert_same
