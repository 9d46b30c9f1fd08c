"""Groups: a stage, or a function of another plan, wrapped as a one-function application to run alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shoal.app import INPUT, App, Plan, Stage

__all__ = ["Group", "group_app", "identity", "make_groups"]

_IN = "_shoal_inputs"
_OUT = "_shoal_outputs"


@dataclass
class Group:
    kind: str  # "stage" | "function"
    name: str
    plans: list[str]
    stages: tuple[str, ...]
    app: App
    ext: tuple[str, ...]  # the values a request carries, in order: INPUT or upstream stage names
    batches: bool  # a stage of it is declared batch=True

    def payload(self, values: Mapping[str, Any]) -> Any:
        return values[self.ext[0]] if len(self.ext) == 1 else [values[u] for u in self.ext]


def _collect(*values: Any) -> list[Any]:
    return list(values)


def identity(x: Any) -> Any:
    return x


def _picking(stage: Stage, picks: list[tuple[int, int | None]]) -> Callable[..., Any]:
    """The stage's function, fed from the wrapper's arguments: ``picks[j] = (argument, element or None)``."""
    fn, has_state = stage.fn, stage.load is not None

    def call(*args: Any) -> Any:
        state, data = (args[:1], args[1:]) if has_state else ((), args)
        return fn(*state, *[data[i] if k is None else data[i][k] for i, k in picks])

    call.__name__ = getattr(fn, "__name__", stage.name)
    return call


def _element(ext: list[str], name: str, whole: bool) -> int | None:
    """Where outside value ``name`` is in the request: all of it (one value) or an element of its list."""
    return None if whole else ext.index(name)


def group_app(app: App, stages: Sequence[str], name: str) -> tuple[App, tuple[str, ...]]:
    """A one-function application that runs ``stages`` of ``app`` as the function holding them would.

    Its request carries the group's external inputs (``INPUT`` or upstream stages' outputs, in the returned order):
    the one value itself when there is one, else a list of them. Stages keep their names, functions, ``load`` and
    ``batch`` (GPU shares are dropped: rows are measured on CPU); its output is the group's output (a list if it has
    several).
    """
    members = set(stages)
    order = [s for s in app.stages if s in members]
    ext: list[str] = []
    for s in order:
        for u in app[s].after or (INPUT,):
            if u not in members and u not in ext:
                ext.append(u)
    whole = len(ext) == 1
    outputs = [s for s in order if s == app.sink or any(d not in members for d in app.downstream(s))]
    sinks = [s for s in order if not any(d in members for d in app.downstream(s))]
    w = App(name)
    mixed = [s for s in order if app[s].after and 0 < sum(u in members for u in app[s].after) < len(app[s].after)]
    if mixed:
        w.add(Stage(_IN, identity))
    for s in order:
        st = app[s]
        res = replace(st.resources, gpu=0.0, gpu_memory_mb=0)
        ups = st.after or (INPUT,)
        inside = [u for u in ups if u in members]
        if len(inside) == len(ups):
            w.add(Stage(s, st.fn, st.after, st.load, res, st.batch))
            continue
        if inside:
            after: tuple[str, ...] = (*inside, _IN)
            # an outside value comes from _IN, the last argument: the request's value, or an element of its list
            picks = [(inside.index(u), None) if u in members else (len(inside), _element(ext, u, whole)) for u in ups]
        else:
            after = ()
            picks = [(0, _element(ext, u, whole)) for u in ups]
        fn = st.fn if picks == [(0, None)] else _picking(st, picks)
        w.add(Stage(s, fn, after, st.load, res, st.batch))
    if outputs != sinks or len(sinks) != 1:
        w.add(Stage(_OUT, _collect, tuple(outputs)))
    w.validate()
    return w, tuple(ext)


def make_groups(app: App, plans: Sequence[str]) -> list[Group]:
    groups = []
    for i, s in enumerate(app.stages):
        w, ext = group_app(app, [s], f"profile-s{i}")
        groups.append(Group("stage", s, ["fine"], (s,), w, ext, app[s].batch))
    by_stages: dict[tuple[str, ...], Group] = {}
    for text in plans:
        plan = Plan.parse(app, text)
        if plan.label == "fine":
            continue
        for f in plan.functions:
            g = by_stages.get(f.stages)
            if g is not None:
                if plan.label not in g.plans:
                    g.plans.append(plan.label)
                continue
            w, ext = group_app(app, f.stages, f"profile-f{len(by_stages)}")
            g = Group("function", f.name, [plan.label], f.stages, w, ext, any(app[s].batch for s in f.stages))
            by_stages[f.stages] = g
            groups.append(g)
    return groups
