"""Running a group of stages in one process: the code an instance runs, and the in-process reference."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.app.graph import INPUT, App

__all__ = ["StageFailed", "run_stages"]


class StageFailed(Exception):
    """A stage raised. Carries the stage's name so that the client is told which stage failed."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"stage {stage!r} raised {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error


def run_stages(
    app: App,
    names: Sequence[str],
    values: Mapping[str, Any],
    states: Mapping[str, Any],
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run the stages ``names`` (any order) given ``values`` of the stages they depend on, and return all values.

    ``values`` holds the outputs of upstream stages outside the group and, under :data:`INPUT`, the request input.
    ``states`` holds what each stage's ``load`` returned. When ``timings`` is given, each stage's execution time in
    seconds is stored in it under the stage's name.
    """
    out = dict(values)
    todo = [n for n in app.stages if n in set(names)]  # insertion order is topological
    for name in todo:
        stage = app[name]
        args = [out[u] for u in stage.after] if stage.after else [out[INPUT]]
        if stage.load is not None:
            args.insert(0, states[name])
        t0 = time.perf_counter()
        try:
            out[name] = stage.fn(*args)
        except Exception as e:
            raise StageFailed(name, e) from e
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    return out
