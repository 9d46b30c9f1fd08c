"""The planner: the cheapest plan whose predicted SLO hit rate meets the target at a load.

A plan is a grouping of the stages into functions (``plan_space.groupings``) and, per function, its settings: a vCPU
share and a maximum batch size (only where a stage of the function is batchable). The planner asks a predictor for
each candidate's SLO hit rate and resource cost per second (``Score``), and chooses as the granularity controller
does (``policy.granularity.best_candidate``): the cheapest candidate that meets the target, else the one with the
highest predicted hit rate.

Search (documented in docs/granularity.md):
- **exhaustive** when groupings x settings stay within ``budget`` predictions (small DAGs: a 3-stage app with
  3 vCPU shares and 3 batch sizes is 4 groupings and at most 9^3 settings each);
- otherwise **coordinate descent** per grouping: start from the stages' declared resources, then, function by
  function, take the setting that most improves the plan (lower cost while meeting the target, or a higher hit rate
  while it does not), until a whole pass changes nothing. Each grouping then costs
  passes x sum of options predictions instead of their product.

Every candidate weighed is returned with its score, so ``shoal plan`` can show what was considered and why one won.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shoal.app import App, FunctionConfig, Plan, Resources
from shoal.policy.granularity import Candidate
from shoal.predict.plan_space import groupings, plan_label

__all__ = ["CannotPredict", "Choice", "Planner", "Score", "Setting", "profile_score"]


class CannotPredict(ValueError):
    """A predictor has nothing to say about this plan (an empirical table that never measured it). The planner
    leaves such plans out and lists them in ``Planner.skipped``."""


@dataclass(frozen=True)
class Score:
    """What a predictor says of a plan at a load: SLO hit rate, resource cost per second, and anything else
    (per-function latency, p99) for the report."""

    slo_hit: float
    cost_per_s: float
    details: dict[str, Any] = field(default_factory=dict, compare=False)


def profile_score(
    predictor: Any, profile: Any, slo: Any = None, input_mix: dict[str, float] | None = None
) -> Callable[[Plan, Any], Score]:
    """The planner's score function from an application predictor over a profile (``AnalyticalPredictor`` or
    ``LearnedPredictor``: ``predict(profile, plan, Load, slo)``), at a load with ``rate`` and ``scv`` (a window's
    ``ObservedLoad`` or any such object) and the given mix of profiled input sizes. What a predictor cannot predict
    (a rate of 0, a stage without rows) is ``CannotPredict``: the planner leaves the plan out."""
    from shoal.predict.app_model import Load, PredictError

    def score(plan: Plan, load: Any) -> Score:
        try:
            p = predictor.predict(profile, plan, Load(load.rate, load.scv, input_mix), slo)
        except PredictError as e:
            raise CannotPredict(str(e)) from None
        return Score(p.slo_hit_rate, p.cost_per_s, {"p99_ms": p.latency_s[99] * 1e3, "predictor": predictor.kind})

    return score


@dataclass(frozen=True)
class Setting:
    """One function's settings: vCPU share (None: the stages' declared resources) and maximum batch size."""

    vcpu: float | None = None
    max_batch_size: int = 1

    def label(self) -> str:
        parts = [] if self.vcpu is None else [f"vcpu={self.vcpu:g}"]
        if self.max_batch_size > 1:
            parts.append(f"batch<={self.max_batch_size}")
        return ",".join(parts) or "declared"


@dataclass(frozen=True)
class Choice:
    """A candidate plan the planner weighed, with its score."""

    plan: Plan
    settings: tuple[Setting, ...]
    score: Score

    @property
    def label(self) -> str:
        """The plan's label: the grouping, then any function's non-default settings (``a+b,c [c: batch<=8]``)."""
        return self.plan.label

    def candidate(self, switch_cost: float = 0.0) -> Candidate:
        return Candidate(self.label, self.score.slo_hit, self.score.cost_per_s, switch_cost)


class Planner:
    """Search plans of ``app`` with ``predict(plan, load) -> Score``; see the module docstring."""

    def __init__(
        self,
        app: App,
        predict: Callable[[Plan, Any], Score],
        slo_target: float = 0.99,
        vcpu_options: Sequence[float | None] = (None,),
        batch_options: Sequence[int] = (1,),
        default: FunctionConfig | None = None,
        budget: int = 5000,
    ) -> None:
        if not 0 < slo_target <= 1:
            raise ValueError(f"slo_target must be in (0, 1], got {slo_target!r}")
        if not vcpu_options or any(v is not None and not v > 0 for v in vcpu_options):
            raise ValueError(f"vcpu_options must be None or shares > 0, got {list(vcpu_options)!r}")
        if not batch_options or any(b < 1 for b in batch_options):
            raise ValueError(f"batch_options must be sizes >= 1, got {list(batch_options)!r}")
        self.app = app
        self.predict = predict
        self.slo_target = slo_target
        self.vcpu_options = list(dict.fromkeys(vcpu_options))
        self.batch_options = sorted(set(batch_options))
        self.default = default or FunctionConfig()
        self.budget = budget
        self.groupings = list(groupings(app))
        self.skipped: list[str] = []  # plans of the last search the predictor could not score

    # -- building plans ---------------------------------------------------------------------------------------------
    def options(self, stages: Sequence[str]) -> list[Setting]:
        """The settings a function of these stages may take: batching only if one of its stages is batchable."""
        batches = self.batch_options if any(self.app[s].batch for s in stages) else [1]
        return [Setting(v, b) for v in self.vcpu_options for b in batches]

    def build(self, groups: Sequence[tuple[str, ...]], settings: Sequence[Setting]) -> Plan:
        configs = {}
        for g, s in zip(groups, settings, strict=True):
            name = "+".join(g)
            cfg = replace(self.default, max_batch_size=s.max_batch_size)
            if s.vcpu is not None:
                declared = Resources.combine([self.app[st].resources for st in g])
                cfg = replace(cfg, resources=replace(declared, vcpu=s.vcpu))
            configs[name] = cfg
        extra = [f"{'+'.join(g)}: {st.label()}" for g, st in zip(groups, settings, strict=True) if st != Setting()]
        label = plan_label(list(groups), self.app) + (f" [{'; '.join(extra)}]" if extra else "")
        return Plan(self.app, groups, configs=configs, default=self.default, label=label)

    # -- searching ----------------------------------------------------------------------------------------------------
    def search(self, load: Any) -> list[Choice]:
        """Every candidate weighed at ``load``, best first (``best_candidate``'s order: meeting the target and
        cheapest, then by hit rate)."""
        sizes = [math.prod(len(self.options(g)) for g in groups) for groups in self.groupings]
        exhaustive = sum(sizes) <= self.budget
        weighed: dict[str, Choice] = {}
        self.skipped = []
        for groups in self.groupings:
            found = self._exhaustive(groups, load) if exhaustive else self._descend(groups, load)
            for c in found:
                weighed.setdefault(c.label, c)
        return sorted(weighed.values(), key=self._rank)

    def best(self, load: Any) -> Choice:
        found = self.search(load)
        if not found:
            raise CannotPredict(f"the predictor could score none of the {len(self.skipped)} plans weighed")
        return found[0]

    def _rank(self, c: Choice) -> tuple[int, float, float]:
        meets = c.score.slo_hit >= self.slo_target
        return (0, c.score.cost_per_s, -c.score.slo_hit) if meets else (1, -c.score.slo_hit, c.score.cost_per_s)

    def _score(self, groups: Sequence[tuple[str, ...]], settings: Sequence[Setting], load: Any) -> Choice | None:
        plan = self.build(groups, settings)
        try:
            score = self.predict(plan, load)
        except CannotPredict:
            self.skipped.append(plan.label)
            return None
        return Choice(plan, tuple(self._settings_of(plan, groups, settings)), score)

    @staticmethod
    def _settings_of(plan: Plan, groups: Sequence[tuple[str, ...]], settings: Sequence[Setting]) -> list[Setting]:
        """Settings in the plan's function order (the plan orders functions topologically)."""
        by_name = {"+".join(g): s for g, s in zip(groups, settings, strict=True)}
        return [by_name[f.name] for f in plan.functions]

    def _exhaustive(self, groups: Sequence[tuple[str, ...]], load: Any) -> Iterable[Choice]:
        per_function = [self.options(g) for g in groups]
        for settings in itertools.product(*per_function):
            c = self._score(groups, settings, load)
            if c is not None:
                yield c

    def _descend(self, groups: Sequence[tuple[str, ...]], load: Any) -> list[Choice]:
        current = [Setting() if Setting() in self.options(g) else self.options(g)[0] for g in groups]
        first = self._score(groups, current, load)
        if first is None:
            return []
        best, seen = first, [first]
        for _ in range(5):  # passes; converges in two or three in practice
            changed = False
            for i, g in enumerate(groups):
                for option in self.options(g):
                    if option == current[i]:
                        continue
                    trial = [*current[:i], option, *current[i + 1 :]]
                    c = self._score(groups, trial, load)
                    if c is None:
                        continue
                    seen.append(c)
                    if self._rank(c) < self._rank(best):
                        best, current, changed = c, trial, True
            if not changed:
                break
        return seen

    def candidates(self, load: Any, limit: int | None = None) -> list[Candidate]:
        """The search's choices as the granularity controller's candidates (``limit``: only the best few)."""
        chosen = self.search(load)
        return [c.candidate() for c in chosen[:limit]]
