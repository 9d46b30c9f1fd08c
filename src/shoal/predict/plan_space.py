"""The groupings a planner can choose from: every valid way to cut an application's stages into functions.

A grouping is valid when ``shoal.Plan`` accepts it: each group is connected inside itself and the groups form a DAG
(no function both feeds and is fed by another). For applications of up to ``EXHAUSTIVE_MAX_STAGES`` stages every set
partition is tried (Bell(8) = 4,140 partitions, enumerated in well under a second); beyond that the space is
restricted to groupings that are contiguous in the application's topological order (2^(n-1) of them), which
contains fine, coarse and every pipeline cut, and is what the planner's large-DAG search starts from.
"""

from __future__ import annotations

from collections.abc import Iterator

from shoal.app import App, Plan, PlanError

__all__ = ["EXHAUSTIVE_MAX_STAGES", "groupings", "plan_label"]

EXHAUSTIVE_MAX_STAGES = 8


def plan_label(groups: list[tuple[str, ...]], app: App) -> str:
    """The canonical text of a grouping ("a+b,c"), with "fine" and "coarse" for the two ends."""
    if len(groups) == len(app.stages):
        return "fine"
    if len(groups) == 1:
        return "coarse"
    return ",".join("+".join(g) for g in groups)


def _set_partitions(items: list[str]) -> Iterator[list[list[str]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]
        yield [[first], *part]


def _contiguous(items: list[str]) -> Iterator[list[list[str]]]:
    n = len(items)
    for mask in range(1 << (n - 1)):
        groups, cur = [], [items[0]]
        for i in range(1, n):
            if mask >> (i - 1) & 1:
                groups.append(cur)
                cur = []
            cur.append(items[i])
        groups.append(cur)
        yield groups


def groupings(app: App, exhaustive: bool | None = None) -> Iterator[list[tuple[str, ...]]]:
    """Valid groupings of ``app``'s stages, each group's stages in topological order; fine first, coarse last.

    ``exhaustive`` (default: up to ``EXHAUSTIVE_MAX_STAGES`` stages) enumerates every set partition; otherwise only
    groupings contiguous in topological order are produced.
    """
    stages = list(app.stages)  # App keeps stages in declaration order, which is topological (after= must exist)
    if exhaustive is None:
        exhaustive = len(stages) <= EXHAUSTIVE_MAX_STAGES
    order = {s: i for i, s in enumerate(stages)}
    found = []
    for parts in _set_partitions(stages) if exhaustive else _contiguous(stages):
        groups = [tuple(sorted(g, key=order.__getitem__)) for g in parts]
        try:
            Plan(app, groups)
        except PlanError:
            continue
        groups.sort(key=lambda g: order[g[0]])
        found.append(groups)
    found.sort(key=lambda gs: (-len(gs), [order[g[0]] for g in gs]))
    yield from found
