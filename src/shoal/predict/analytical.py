"""The analytical application predictor: a G/G/c queue per function, end to end along the plan's DAG.

Per function (docs/predictors.md, "The analytical predictor", says each step and its assumptions):

1. **Service** from the profile (``shoal.predict.service``): lognormal parts by input size and batch size.
2. **Batching**: with ``max_batch_size`` B > 1 the mean batch ``b`` is the fixed point of
   ``b = min(B, max(1 + lambda_s * max_batch_wait_s, lambda_s * S(b)))`` (requests that arrive while the timer runs,
   or while the previous batch is served), ``lambda_s`` the arrival rate per server. Batches are the queue's jobs:
   arrival rate ``lambda / b``, service ``S(b)``, inter-arrival SCV ``scv / b``.
3. **Servers**: ``c`` instances x ``min(max_concurrency, ceil(vcpu))`` (concurrent requests beyond the instance's
   cores share them, adding no throughput). ``c`` is the steady state of the KPA autoscaler: the smallest ``c`` at or
   above ``ceil(lambda * S / target_concurrency)`` with ``ceil(lambda * T(c) / target) <= c``, ``T(c)`` the time a
   request spends in the function (Little's law: the autoscaler's metric counts queued requests too), bounded by
   ``min_instances`` and ``max_instances``.
4. **Wait**: Allen-Cunneen G/G/c (``shoal.predict.queueing``); a request waits with probability ``C(c, a)``, then
   for a gamma time with the conditional mean and the SCV of the M/G/c wait (Takacs' moments, c servers as one
   c times as fast), moved towards 1 (exponential) as arrivals get burstier than Poisson (``scv / b`` from 1 to 2).
   Overloaded at ``max_instances`` (utilisation >= 1): a fraction ``1 - 1/rho`` of requests is lost (the queue is
   full), the rest wait ``queue_limit / throughput``; a wait beyond ``timeout_s`` is lost too.
5. **Cold start**: with ``min_instances == 0`` a request finds no instance when the gap before it exceeds the
   keep-alive: probability ``exp(-lambda * keep_alive_s)`` (Poisson gaps); it then pays the function's cold start.
6. **Overhead**: the function call's round trip with its data (``latency_ms - busy_ms`` of the profile's rows).

End to end: a request's time through a function is sampled (``samples`` draws, fixed seed, the same uniforms for
every call so that predictions compare across loads and plans); functions start when all their upstream functions
are done (joins at the max) and the response leaves with the last. Percentiles and the SLO hit rate are read off the
samples.

Cost: each function's mean live instances (``min_instances + (c - min_instances)(1 - exp(-lambda keep_alive_s))``)
x its resources' price per second (``predict/prices.py``, as the meters price them). The user bill per request is the
per-request fee of every function plus its billed time (busy time of the request's share of its batch) x resources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shoal.app import SLO, Function, Plan
from shoal.predict.app_model import FunctionPrediction, Load, PredictError, Prediction
from shoal.predict.prices import DEFAULT_PRICES, PriceTable
from shoal.predict.profile import Profile, ProfileError
from shoal.predict.queueing import GGcWait, conditional_wait_scv, ggc_wait
from shoal.predict.service import FunctionService, service_of

__all__ = ["AnalyticalPredictor", "usd_per_instance_s"]

PERCENTILES = (50, 95, 99)


def usd_per_instance_s(function: Function, prices: PriceTable) -> float:
    """What one live instance of ``function`` costs per second: vCPU, memory (GiB) and GPU share at ``prices``."""
    r = function.resources
    return r.vcpu * prices.per_vcpu_s + r.memory_mb / 1024 * prices.per_gib_s + r.gpu * prices.per_gpu_s


@dataclass(frozen=True)
class _Solved:
    """One function at its steady state."""

    function: Function
    service: FunctionService
    instances: int
    batch: float
    wait: GGcWait
    servers: int
    mean_busy_s: float  # one batch, averaged over the input mix
    batch_wait_s: float  # most a request waits for its batch to form
    lost: float  # fraction of requests lost to overload
    wait_scv: float  # SCV of the wait of those who wait (1: exponential)
    overload_wait_s: float
    cold_p: float


class AnalyticalPredictor:
    """See the module. ``samples`` trades the percentiles' precision (about +-0.3 % of requests at p99 with 20,000)
    against time; ``seed`` fixes the draws; ``cpu_quota`` scales shares below one core (``shoal.predict.service``)."""

    kind = "analytical"

    def __init__(
        self, prices: PriceTable = DEFAULT_PRICES, samples: int = 20_000, seed: int = 0, *, cpu_quota: bool = False
    ) -> None:
        self.cpu_quota = cpu_quota
        if samples < 100:
            raise PredictError(f"samples must be >= 100 to read a p99, got {samples!r}")
        self.prices = prices
        self.samples = samples
        self.seed = seed

    # -- one function ---------------------------------------------------------------------------------------------
    def _solve(self, f: Function, service: FunctionService, mix: dict[str, float], load: Load) -> _Solved:
        cfg = f.config
        lam = load.rate_rps
        per_instance = max(1, min(f.resources.max_concurrency, math.ceil(f.resources.vcpu)))

        def mean_busy(b: float) -> float:
            return sum(w * service.mean_s(s, b) for s, w in mix.items())

        def second(b: float) -> float:
            return sum(w * (service.var_s2(s, b) + service.mean_s(s, b) ** 2) for s, w in mix.items())

        def at(c: int) -> tuple[float, GGcWait, int, float]:
            n = c * per_instance
            lam_s = lam / n
            b = 1.0
            if cfg.max_batch_size > 1:
                for _ in range(30):
                    b = min(float(cfg.max_batch_size), max(1.0, 1 + lam_s * cfg.max_batch_wait_s, lam_s * mean_busy(b)))
            m = mean_busy(b)
            cs2 = max(0.0, second(b) / (m * m) - 1.0)
            return b, ggc_wait(lam / b, m, n, load.scv / b, cs2), n, m

        target = f.target_concurrency
        c = max(cfg.min_instances, 1, math.ceil(lam * mean_busy(1.0) / target - 1e-9))
        c = min(c, cfg.max_instances)
        while True:
            b, wait, n, m = at(c)
            in_function = (wait.mean_s if wait.stable else math.inf) + m
            want = math.ceil(lam * in_function / target - 1e-9) if math.isfinite(in_function) else c + 1
            if want <= c or c >= cfg.max_instances:
                break
            c += 1  # one at a time: T(c) falls as c grows, so the first c that holds is the autoscaler's fixed point
        lam_s = lam / n
        batch_wait = 0.0
        if cfg.max_batch_size > 1:
            batch_wait = min(cfg.max_batch_wait_s, (cfg.max_batch_size - 1) / lam_s)
        lost, overload_wait = 0.0, 0.0
        if not wait.stable:
            lost = 1.0 - 1.0 / wait.utilisation
            throughput = n * b / m
            overload_wait = cfg.queue_limit / throughput
            if overload_wait > cfg.timeout_s:
                lost = 1.0
        cold = math.exp(-lam * cfg.keep_alive_s) if cfg.min_instances == 0 else 0.0
        m1, m2, m3 = (sum(w * service.moments(size, b)[k] for size, w in mix.items()) for k in range(3))
        shape = conditional_wait_scv(lam / b, m1, m2, m3, servers=n)
        shape += (1.0 - shape) * min(1.0, max(0.0, load.scv / b - 1.0))  # burstier than Poisson: towards exponential
        return _Solved(f, service, c, b, wait, n, m, batch_wait, lost, shape, overload_wait, cold)

    # -- sampling -------------------------------------------------------------------------------------------------
    def _sample(
        self, s: _Solved, mix: dict[str, float], u: np.ndarray, z: np.ndarray, size_idx: np.ndarray
    ) -> np.ndarray:
        """Time of each sampled request in the function. ``u``: uniforms (5 per sample), ``z``: normals per part."""
        sizes = list(mix)
        t = np.zeros(len(size_idx))
        for k, size in enumerate(sizes):
            sel = size_idx == k
            if not sel.any():
                continue
            t[sel] += s.service.overhead_s[size]
            for j, part in enumerate(s.service.parts(size, s.batch)):
                sigma = math.sqrt(math.log1p(part.cv * part.cv))
                t[sel] += part.median_s * np.exp(sigma * z[sel, j % z.shape[1]])
        if s.wait.stable:
            waits = u[:, 0] < s.wait.p_wait
            t += np.where(waits, _wait_quantile(u[:, 1], s.wait.conditional_mean_s, s.wait_scv), 0.0)
            if s.batch_wait_s > 0:  # an idle instance holds a request until its batch fills or the timer ends
                t += np.where(waits, 0.0, u[:, 2] * s.batch_wait_s)
        else:
            t += s.overload_wait_s
            t = np.where(u[:, 3] < s.lost, np.inf, t)
        if s.cold_p > 0:
            t += np.where(u[:, 4] < s.cold_p, s.service.cold_start_s, 0.0)
        return t

    # -- the interface --------------------------------------------------------------------------------------------
    def predict(self, profile: Profile, plan: Plan, load: Load, slo: SLO | None = None) -> Prediction:
        """Predict ``plan`` of ``profile``'s application under ``load``; ``slo`` defaults to the application's."""
        slo = slo or plan.app.slo
        declared = {s.name for s in profile.app.stages}
        missing = [s for s in plan.app.stages if s not in declared]
        if missing:
            raise PredictError(
                f"the profile of app {profile.app.name!r} has no stage {missing[0]!r} of plan {plan.label!r}: "
                "profile this application (shoal profile FILE.py)"
            )
        measured = {p.input_size for p in profile.points}
        mix = load.mix(tuple(s for s in profile.settings.input_sizes if s in measured) or tuple(sorted(measured)))
        try:
            services = [service_of(profile, f, list(mix), cpu_quota=self.cpu_quota) for f in plan.functions]
        except ProfileError as e:
            raise PredictError(f"cannot predict plan {plan.label!r} from this profile: {e}") from None
        solved = [self._solve(f, sv, mix, load) for f, sv in zip(plan.functions, services, strict=True)]
        rng = np.random.default_rng(self.seed)
        size_idx = np.searchsorted(np.cumsum(list(mix.values())), rng.random(self.samples) * (1 - 1e-12), side="right")
        done: dict[str, np.ndarray] = {}
        per_function = []
        for s in solved:
            u = rng.random((self.samples, 5))
            z = rng.standard_normal((self.samples, max(1, len(s.function.stages))))
            t = self._sample(s, mix, u, z, size_idx)
            start = np.zeros(self.samples)
            for up in s.function.upstream:
                start = np.maximum(start, done[up])
            done[s.function.name] = start + t
            per_function.append((s, t))
        e2e = np.max(np.stack(list(done.values())), axis=0)
        fps = tuple(self._function_prediction(s, t, load) for s, t in per_function)
        cost_s = sum(f.cost_per_s for f in fps)
        bill = sum(
            self.prices.per_request + s.mean_busy_s / s.batch * usd_per_instance_s(s.function, self.prices)
            for s, _ in per_function
        )
        notes = tuple(
            f"function {f.name!r} is overloaded at max_instances: requests are lost" for f in fps if not f.stable
        )
        return Prediction(
            predictor=self.kind,
            plan=plan.label,
            load=load,
            slo=slo,
            latency_s=_percentiles(e2e),
            slo_hit_rate=float(np.mean(e2e <= slo.latency_s)),
            instances=sum(f.instances for f in fps),
            mean_instances=sum(f.mean_instances for f in fps),
            cost_per_s=cost_s,
            cost_per_request=cost_s / load.rate_rps,
            bill_per_request=bill,
            functions=fps,
            notes=notes,
        )

    def _function_prediction(self, s: _Solved, t: np.ndarray, load: Load) -> FunctionPrediction:
        cfg = s.function.config
        alive = 1.0 - math.exp(-load.rate_rps * cfg.keep_alive_s)
        mean_instances = cfg.min_instances + (s.instances - cfg.min_instances) * alive
        return FunctionPrediction(
            name=s.function.name,
            stages=s.function.stages,
            instances=s.instances,
            mean_instances=mean_instances,
            utilisation=s.wait.utilisation,
            batch=s.batch,
            service_s=s.mean_busy_s,
            wait_s=s.wait.mean_s if s.wait.stable else math.inf,
            cold_start_p=s.cold_p,
            latency_s=_percentiles(t),
            cost_per_s=mean_instances * usd_per_instance_s(s.function, self.prices),
            stable=s.wait.stable,
        )


def _wait_quantile(u: np.ndarray, mean_s: float, scv: float) -> np.ndarray:
    """Quantiles ``u`` of the wait of those who wait: exponential, or gamma of that SCV when it is below 1."""
    if scv >= 0.999:
        return -np.log1p(-u) * mean_s
    from scipy.special import gammaincinv  # scipy comes with scikit-learn

    k = 1.0 / max(scv, 0.02)
    # The inverse CDF on a grid (dense towards the tail), interpolated: 30x cheaper than at every sample, and monotone.
    table = np.asarray(gammaincinv(k, _U_GRID)) * (mean_s / k)
    return np.interp(u, _U_GRID, table)


_U_GRID = np.unique(np.concatenate([np.linspace(0.0, 0.99, 400), 1.0 - np.logspace(-2, -7, 200)]))


def _percentiles(x: np.ndarray) -> dict[int, float]:
    return {p: float(np.percentile(x, p, method="inverted_cdf")) for p in PERCENTILES}
