"""Granularity plans: how an application's stages are grouped into serverless functions.

A plan is a deployment choice, not a code change: the same application runs under every valid plan and gives the
same outputs. Each function of a plan has its own configuration (resources, scaling bounds, keep-alive, timeout,
queue limit, batching) and scales on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shoal.app.graph import INPUT, App
from shoal.app.spec import Resources, SpecError

__all__ = ["Function", "FunctionConfig", "Plan", "PlanError"]


class PlanError(ValueError):
    """A plan does not partition the application into valid functions. The message names the stage or group."""


@dataclass(frozen=True)
class FunctionConfig:
    """Per-function settings of a plan. ``resources=None`` combines the stages' own (see ``Resources.combine``)."""

    resources: Resources | None = None
    min_instances: int = 0
    max_instances: int = 8
    #: How long the function's last instance stays warm after its last request before it scales to zero.
    keep_alive_s: float = 60.0
    #: How long an instance above the autoscaler's desired count must have been idle before it is stopped
    #: (policy/keepalive.py: surplus instances do not wait out the keep-alive).
    surplus_idle_s: float = 1.0
    timeout_s: float = 30.0
    queue_limit: int = 256
    #: The autoscaler's target of in-flight requests per instance; None means 70% of max_concurrency (Knative's
    #: default target utilisation; 0.7 for a one-request instance, as Knative's 0.7 of containerConcurrency 1).
    target_concurrency: float | None = None
    max_batch_size: int = 1
    max_batch_wait_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise SpecError(
                f"need 0 <= min_instances <= max_instances and max_instances >= 1, "
                f"got {self.min_instances}..{self.max_instances}"
            )
        for name in ("keep_alive_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise SpecError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.surplus_idle_s < math.inf:
            raise SpecError(f"surplus_idle_s must be a finite number >= 0, got {self.surplus_idle_s!r}")
        if self.queue_limit < 0:
            raise SpecError(f"queue_limit must be >= 0, got {self.queue_limit!r}")
        if self.target_concurrency is not None and self.target_concurrency <= 0:
            raise SpecError(f"target_concurrency must be positive, got {self.target_concurrency!r}")
        if self.max_batch_size < 1 or self.max_batch_wait_s < 0:
            raise SpecError("max_batch_size must be >= 1 and max_batch_wait_s >= 0")


@dataclass(frozen=True)
class Function:
    """One function of a plan: a connected group of stages deployed and scaled together."""

    name: str
    stages: tuple[str, ...]
    config: FunctionConfig
    resources: Resources
    #: Values the function needs from outside: names of upstream stages in other functions, or INPUT.
    inputs: tuple[str, ...]
    #: Values of its stages that other functions (or the response) need.
    outputs: tuple[str, ...]
    #: Names of the functions it takes inputs from.
    upstream: tuple[str, ...] = field(default=())

    @property
    def target_concurrency(self) -> float:
        """In-flight requests per instance the autoscaler aims for: 70% of what an instance can hold at once."""
        t = self.config.target_concurrency
        capacity = self.resources.max_concurrency * self.config.max_batch_size
        return t if t is not None else 0.7 * capacity


class Plan:
    """A validated partition of an application's stages into functions, in topological order."""

    def __init__(
        self,
        app: App,
        groups: Sequence[Sequence[str]],
        configs: Mapping[str, FunctionConfig] | None = None,
        default: FunctionConfig | None = None,
        label: str | None = None,
    ) -> None:
        app.validate()
        self.app = app
        parts = [tuple(g) for g in groups]
        _check_partition(app, parts)
        self.label = label or ",".join("+".join(g) for g in parts)
        default = default or FunctionConfig()
        #: The settings of functions that ``configs`` does not name; a plan switch over HTTP reuses them.
        self.default = default
        configs = dict(configs or {})
        owner = {s: i for i, g in enumerate(parts) for s in g}
        names = ["+".join(_topo(app, g)) for g in parts]
        unknown = set(configs) - set(names)
        if unknown:
            raise PlanError(f"configuration given for {sorted(unknown)}, which are not functions of this plan: {names}")
        order = _function_order(app, parts, owner, names)
        sink = app.sink
        funcs = []
        for i in order:
            g = set(parts[i])
            stages = _topo(app, g)
            inputs: list[str] = []
            for s in stages:
                for u in app[s].after or (INPUT,):
                    if u not in g and u not in inputs:
                        inputs.append(u)
            outputs = [s for s in stages if s == sink or any(d not in g for d in app.downstream(s))]
            upstream = sorted({names[owner[u]] for u in inputs if u != INPUT}, key=names.index)
            cfg = configs.get(names[i], default)
            res = cfg.resources or Resources.combine([app[s].resources for s in stages])
            funcs.append(Function(names[i], tuple(stages), cfg, res, tuple(inputs), tuple(outputs), tuple(upstream)))
        self.functions: list[Function] = funcs

    # -- constructors ---------------------------------------------------------------------------------------------
    @classmethod
    def fine(cls, app: App, **kw: Any) -> Plan:
        """One function per stage."""
        return cls(app, [[s] for s in app.stages], label="fine", **kw)

    @classmethod
    def coarse(cls, app: App, **kw: Any) -> Plan:
        """One function for the whole application."""
        return cls(app, [list(app.stages)], label="coarse", **kw)

    @classmethod
    def parse(cls, app: App, text: str, **kw: Any) -> Plan:
        """``"fine"``, ``"coarse"``, or groups such as ``"decode+resize,backbone,head"``."""
        text = text.strip()
        if text == "fine":
            return cls.fine(app, **kw)
        if text == "coarse":
            return cls.coarse(app, **kw)
        if not text:
            raise PlanError("empty plan: write fine, coarse, or groups such as 'a+b,c'")
        groups = [[s.strip() for s in g.split("+")] for g in text.split(",")]
        if any(not s for g in groups for s in g):
            raise PlanError(f"plan {text!r} has an empty stage name; write groups such as 'a+b,c'")
        return cls(app, groups, **kw)

    # -- reading --------------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise PlanError(f"plan {self.label!r} has no function {name!r}")

    def function_of(self, stage: str) -> Function:
        for f in self.functions:
            if stage in f.stages:
                return f
        raise PlanError(f"plan {self.label!r} has no stage {stage!r}")

    def with_config(self, name: str | None = None, **changes: Any) -> Plan:
        """A copy with ``changes`` applied to one function's config (or to every function's when name is None)."""
        configs = {
            f.name: (replace(f.config, **changes) if name in (None, f.name) else f.config) for f in self.functions
        }
        if name is not None and name not in configs:
            raise PlanError(f"plan {self.label!r} has no function {name!r}")
        return Plan(self.app, [f.stages for f in self.functions], configs, label=self.label)

    def __repr__(self) -> str:
        return f"Plan({self.app.name!r}, {self.label!r}, functions={[f.name for f in self.functions]})"


def _topo(app: App, group: Sequence[str] | set[str]) -> list[str]:
    members = set(group)
    return [s for s in app.stages if s in members]


def _check_partition(app: App, groups: list[tuple[str, ...]]) -> None:
    if not groups:
        raise PlanError("a plan needs at least one group")
    seen: dict[str, int] = {}
    for i, g in enumerate(groups):
        label = "+".join(g)
        if not g:
            raise PlanError(f"group {i + 1} is empty")
        for s in g:
            if s not in app.stages:
                raise PlanError(
                    f"group {label!r} names {s!r}, which is not a stage of app {app.name!r} "
                    f"(stages: {', '.join(app.stages)})"
                )
            if s in seen:
                other = "+".join(groups[seen[s]])
                where = f"groups {other!r} and {label!r}" if seen[s] != i else f"group {label!r} twice"
                raise PlanError(f"stage {s!r} is in {where}; each stage belongs to exactly one group")
            seen[s] = i
        _check_connected(app, g, label)
    missing = [s for s in app.stages if s not in seen]
    if missing:
        raise PlanError(f"stage {missing[0]!r} is in no group; every stage must belong to exactly one group")


def _check_connected(app: App, group: tuple[str, ...], label: str) -> None:
    members = set(group)
    reached = {group[0]}
    frontier = [group[0]]
    while frontier:
        s = frontier.pop()
        for n in [*app[s].after, *app.downstream(s)]:
            if n in members and n not in reached:
                reached.add(n)
                frontier.append(n)
    if reached != members:
        apart = sorted(members - reached)[0]
        raise PlanError(
            f"group {label!r} is not connected: stage {apart!r} shares no edge with {group[0]!r} inside the group"
        )


def _function_order(app: App, groups: list[tuple[str, ...]], owner: dict[str, int], names: list[str]) -> list[int]:
    """Topological order of the function graph; a cycle is refused naming the groups on it."""
    edges: dict[int, set[int]] = {i: set() for i in range(len(groups))}
    for s, st in app.stages.items():
        for u in st.after:
            if owner[u] != owner[s]:
                edges[owner[u]].add(owner[s])
    order: list[int] = []
    state: dict[int, int] = {}  # 1 = on stack, 2 = done

    def visit(i: int, path: list[int]) -> None:
        if state.get(i) == 2:
            return
        if state.get(i) == 1:
            cycle = [*path[path.index(i) :], i]
            raise PlanError(
                "the function graph has a cycle: "
                + " -> ".join(repr(names[j]) for j in cycle)
                + "; a group may not both feed and depend on another group"
            )
        state[i] = 1
        for j in sorted(edges[i]):
            visit(j, [*path, i])
        state[i] = 2
        order.append(i)

    for i in range(len(groups)):
        visit(i, [])
    return order[::-1]
