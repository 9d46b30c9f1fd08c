"""The ``shoal`` command. Each command group lives in a module of its own and registers on :data:`cli`."""

from __future__ import annotations

import sys
from typing import Any

# Importing a module registers its commands; --help lists them in this order, the everyday ones first.
# isort: off
from shoal.cli import serving  # noqa: F401
from shoal.cli import loading, planning, predicting, profiling, simulating, training  # noqa: F401
from shoal.cli._app import cli

# isort: on

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> Any:
    return cli(args=argv if argv is not None else sys.argv[1:])
