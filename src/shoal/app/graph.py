"""The application: a DAG of stages.

A stage is a Python function. A stage with no upstream stages receives the request's input; a stage with upstream
stages receives their outputs as positional arguments, in the order given by ``after``. A stage with a ``load``
function receives the loaded object (a model, a session) as its first argument; ``load`` runs once per instance, and
its time is part of that instance's cold start. The application's output is the output of its one sink stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.app.spec import SLO, ArraySpec, Resources, SpecError

__all__ = ["App", "Stage", "AppError", "INPUT"]

#: The name under which the request's input is passed to source stages.
INPUT = "__input__"


class AppError(ValueError):
    """The application's stages do not form a valid DAG."""


@dataclass(frozen=True, eq=False)
class Stage:
    """One step of an application. Create stages with :meth:`App.stage`."""

    name: str
    fn: Callable[..., Any]
    after: tuple[str, ...] = ()
    load: Callable[[], Any] | None = None
    resources: Resources = field(default_factory=Resources)
    batch: bool = False

    def __call__(self, *args: Any) -> Any:
        """Call the stage's function directly (handy in tests and notebooks)."""
        return self.fn(*args)


StageRef = str | Stage


class App:
    """A multi-stage ML application with a latency SLO.

    >>> app = App("double")
    >>> @app.stage()
    ... def twice(x):
    ...     return 2 * x
    >>> app.run(21)
    42
    """

    def __init__(self, name: str, slo: SLO | str | None = None, input: ArraySpec | None = None) -> None:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise AppError(f"application name {name!r} must be non-empty letters, digits, '-' or '_'")
        self.name = name
        self.slo = SLO.parse(slo) if isinstance(slo, str) else (slo or SLO())
        self.input = input
        self._stages: dict[str, Stage] = {}

    # -- building -------------------------------------------------------------------------------------------------
    def stage(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        after: StageRef | Sequence[StageRef] = (),
        load: Callable[[], Any] | None = None,
        vcpu: float = 1.0,
        memory_mb: int = 512,
        gpu: float = 0.0,
        gpu_memory_mb: int = 0,
        max_concurrency: int = 1,
        batch: bool = False,
    ) -> Any:
        """Register a stage; use as ``@app.stage(after=..., load=..., vcpu=...)``. Returns the :class:`Stage`."""

        def register(f: Callable[..., Any]) -> Stage:
            res = Resources(vcpu, memory_mb, gpu, gpu_memory_mb, max_concurrency)
            return self.add(Stage(name or f.__name__, f, _names(after), load, res, batch))

        return register(fn) if fn is not None else register

    def add(self, stage: Stage) -> Stage:
        """Add a stage built by hand. Its upstream stages must already be in the application."""
        if stage.name in self._stages:
            raise AppError(f"stage {stage.name!r} is defined twice in app {self.name!r}")
        if not stage.name or stage.name != stage.name.strip() or stage.name == INPUT or {"+", ","} & set(stage.name):
            raise AppError(
                f"stage name {stage.name!r} must be non-empty, without leading or trailing spaces, "
                f"and may not be {INPUT!r} or contain '+' or ','"
            )
        for up in stage.after:
            if up not in self._stages:
                raise AppError(f"stage {stage.name!r} comes after {up!r}, which is not (yet) a stage of {self.name!r}")
        if len(set(stage.after)) != len(stage.after):
            raise AppError(f"stage {stage.name!r} lists an upstream stage twice: {stage.after}")
        self._stages[stage.name] = stage
        return stage

    # -- reading --------------------------------------------------------------------------------------------------
    @property
    def stages(self) -> dict[str, Stage]:
        """Stages by name, in the order they were added (which is a topological order)."""
        return dict(self._stages)

    def __getitem__(self, name: str) -> Stage:
        try:
            return self._stages[name]
        except KeyError:
            raise AppError(f"app {self.name!r} has no stage {name!r}; it has {', '.join(self._stages)}") from None

    def downstream(self, name: str) -> list[str]:
        return [s.name for s in self._stages.values() if name in s.after]

    @property
    def sources(self) -> list[str]:
        return [s.name for s in self._stages.values() if not s.after]

    @property
    def sink(self) -> str:
        """The one stage whose output is the application's output."""
        self.validate()
        return next(n for n in self._stages if not self.downstream(n))

    def validate(self) -> None:
        """Raise :class:`AppError` unless the stages form a DAG with exactly one sink."""
        if not self._stages:
            raise AppError(f"app {self.name!r} has no stages; add one with @app.stage()")
        sinks = [n for n in self._stages if not self.downstream(n)]
        if len(sinks) != 1:
            raise AppError(
                f"app {self.name!r} must have exactly one final stage, found {len(sinks)}: {', '.join(sinks)}; "
                "add a stage after them that merges their outputs"
            )

    def run(self, x: Any) -> Any:
        """Run the whole application in this process, with no runtime: the reference every plan must agree with."""
        from shoal.app.execute import run_stages

        states = {n: s.load() for n, s in self._stages.items() if s.load is not None}
        out = run_stages(self, list(self._stages), {INPUT: x}, states)
        return out[self.sink]

    def __repr__(self) -> str:
        return f"App({self.name!r}, stages={list(self._stages)}, slo={self.slo})"


def _names(refs: StageRef | Sequence[StageRef]) -> tuple[str, ...]:
    items: Iterable[StageRef] = [refs] if isinstance(refs, (str, Stage)) else refs
    out = []
    for r in items:
        if isinstance(r, Stage):
            out.append(r.name)
        elif isinstance(r, str):
            out.append(r)
        else:
            raise SpecError(f"after= takes stage names or stages, got {r!r}")
    return tuple(out)
