"""The benchmark scripts are not a package: their tests import them with benchmarks/ on the path."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmark(name: str) -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def trial_replay() -> Iterator[ModuleType]:
    yield from _benchmark("trial_replay")


@pytest.fixture(scope="module")
def granularity() -> Iterator[ModuleType]:
    yield from _benchmark("granularity")


@pytest.fixture
def kept_results() -> Path:
    """benchmarks/results/: the documents and tables the benchmarks keep in the repository."""
    return BENCH / "results"
