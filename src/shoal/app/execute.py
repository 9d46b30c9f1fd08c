"""Running a group of stages in one process: the code an instance runs, and the in-process reference."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shoal.app.graph import INPUT, App, Stage

__all__ = ["StageFailed", "run_batch", "run_stages"]


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
        args = _args(stage, out, states)
        t0 = time.perf_counter()
        try:
            out[name] = stage.fn(*args)
        except Exception as e:
            raise StageFailed(name, e) from e
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    return out


def _inputs(stage: Stage, values: Mapping[str, Any]) -> list[Any]:
    """The stage's data arguments: its upstream stages' outputs, in ``after`` order, or the request's input."""
    return [values[u] for u in stage.after] if stage.after else [values[INPUT]]


def _args(stage: Stage, values: Mapping[str, Any], states: Mapping[str, Any]) -> list[Any]:
    """All arguments: what the stage's ``load`` returned (if it has one), then its data arguments."""
    data = _inputs(stage, values)
    return [states[stage.name], *data] if stage.load is not None else data


def _batch_key(args: Sequence[Any]) -> tuple[Any, ...] | None:
    """Requests whose arrays agree on everything but the first axis can share one batched call."""
    key = []
    for a in args:
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            return None
        key.append((a.shape[1:], a.dtype.str))
    return tuple(key)


def _split(out: Any, cuts: list[int], stage: str) -> list[Any]:
    if isinstance(out, np.ndarray) and out.ndim > 0 and out.shape[0] == cuts[-1]:
        return np.split(out, cuts[:-1])
    if isinstance(out, dict):
        parts = {k: _split(v, cuts, stage) for k, v in out.items()}
        return [{k: p[i] for k, p in parts.items()} for i in range(len(cuts))]
    if isinstance(out, (list, tuple)):
        parts_l = [_split(v, cuts, stage) for v in out]
        return [type(out)(p[i] for p in parts_l) for i in range(len(cuts))]
    raise ValueError(
        f"batched stage {stage!r} must return an array with one row per input row ({cuts[-1]}), "
        "or a dict/list/tuple of such arrays"
    )


def run_batch(
    app: App,
    names: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    states: Mapping[str, Any],
) -> list[tuple[dict[str, Any] | StageFailed, dict[str, float]]]:
    """Run stages ``names`` for several requests at once; per request, its values (or its failure) and timings.

    Stages declared with ``batch=True`` are called once for all requests whose input arrays agree on every axis but
    the first: their arrays are concatenated along axis 0 and the output is split back by the requests' row counts
    (so a request may carry several rows). Other stages are called once per request. A stage that raises fails the
    requests it was called for, and only those.
    """
    outs = [dict(v) for v in items]
    failed: list[StageFailed | None] = [None] * len(items)
    timings: list[dict[str, float]] = [{} for _ in items]
    for name in [n for n in app.stages if n in set(names)]:
        stage = app[name]
        live = [i for i, f in enumerate(failed) if f is None]
        groups: dict[Any, list[int]] = {}
        for i in live:
            key = _batch_key(_inputs(stage, outs[i])) if stage.batch and len(live) > 1 else None
            groups.setdefault(key if key is not None else ("alone", i), []).append(i)
        for key, members in groups.items():
            arg_lists = [_args(stage, outs[i], states) for i in members]
            t0 = time.perf_counter()
            try:
                if len(members) == 1 or key[0] == "alone":
                    results = [stage.fn(*arg_lists[0])]
                else:
                    offset = 1 if stage.load is not None else 0
                    cols = [
                        np.concatenate([a[j] for a in arg_lists]) if j >= offset else arg_lists[0][j]
                        for j in range(len(arg_lists[0]))
                    ]
                    cuts = list(np.cumsum([a[offset].shape[0] for a in arg_lists]))
                    results = _split(stage.fn(*cols), cuts, name)
            except Exception as e:
                for i in members:
                    failed[i] = StageFailed(name, e)
                continue
            dt = time.perf_counter() - t0
            for i, r in zip(members, results, strict=True):
                outs[i][name] = r
                timings[i][name] = dt
    return [(failed[i] or outs[i], timings[i]) for i in range(len(items))]
