"""Serverless k-means (Lloyd's): Shoal's training against scikit-learn in one process and against Lithops.

Every system runs the same algorithm from the same random initial centres on the same Gaussian blobs, so they make
the same iterates: the comparison is purely one of time and cost.

- ``sklearn``: ``KMeans(init=C0, n_init=1, algorithm="lloyd", tol=0)`` in this process, its threads held to C
  (``threadpoolctl``): the floor with the same cores.
- ``shoal``: ``shoal.train.train`` with W workers of C cores on the ``local`` back end (Shoal functions), state in a
  redis-server started once for the benchmark (as a deployment would have one); a fresh executor per job, so the
  time to target includes starting the runtime.
- ``lithops``: what a Lithops user writes: each iteration one ``map`` over W shards on Lithops' ``localhost`` back
  end, each call reading its shard (``.npy``) and returning per-centre sums, counts and inertia computed with
  Shoal's own k-means kernel (so only the system differs), reduced and applied in the driver.

Measured per configuration, ``--repeats`` times:

- time per iteration in the steady state: Shoal, the median over the rounds of an ``--iter-rounds`` job of the
  slowest worker's compute + synchronisation; scikit-learn, fit time over iterations of an ``--iter-rounds`` fit;
  Lithops, the median map round trip after the first;
- time to the target inertia, end to end: from the call to a model at the target, start-up included. The target is
  the inertia within ``--target`` (relative) of the inertia after ``--converge`` Lloyd iterations;
- cost: Shoal, the job's own cost report (billed vCPU-s, user bill); Lithops, the sum of its calls' execution
  times (what a FaaS would bill, 1 vCPU each); scikit-learn, cores x wall seconds;
- shoal-proc: as shoal, each worker's C cores as C processes over a shared-memory shard (``parallel="processes"``)
  instead of C threads;
- shoal-fixed vs shoal-autotune: the same W=2 job of ``--autotune-rounds`` rounds without and with the scale-in
  auto-tuner: wall, billed vCPU-s, final inertia.

    .venv/bin/python benchmarks/train_kmeans.py [--rows 200000] [--dims 16] [--k 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, fmt, table
from _lithops import run_rounds
from _train import run_configs, save_results

from shoal.predict.prices import DEFAULT_PRICES
from shoal.train import make_blobs, train
from shoal.train.algorithms.kmeans import KMeans

GRID = [(1, 1), (1, 2), (2, 1)]  # W x C at <= 2 cores in all: what this 2-core machine allows


def lithops_partial(path: str, centers: np.ndarray) -> np.ndarray:
    """One Lithops call: this shard's per-centre sums, counts and inertia (the shard is read on every call)."""
    X = np.load(path, allow_pickle=False)
    return KMeans(n_features=X.shape[1], k=len(centers)).partial(
        np.concatenate([centers.ravel(), np.zeros(len(centers))]), X, None, 1
    )


def reference_losses(X: np.ndarray, C0: np.ndarray, rounds: int) -> list[float]:
    algo = KMeans(n_features=X.shape[1], k=len(C0))
    model, out = algo.initial_model(C0), []
    for _ in range(rounds):
        model, loss = algo.apply(model, algo.partial(model, X, None, 1))
        out.append(loss)
    return out


def run_sklearn(X: np.ndarray, C0: np.ndarray, cores: int, iters: int) -> dict[str, Any]:
    from sklearn.cluster import KMeans as SK
    from threadpoolctl import threadpool_limits

    with threadpool_limits(cores):
        t = time.perf_counter()
        km = SK(len(C0), init=C0, n_init=1, algorithm="lloyd", max_iter=iters, tol=0).fit(X)
        wall = time.perf_counter() - t
    return {"iter_ms": wall / km.n_iter_ * 1e3, "to_target_s": wall, "inertia": float(km.inertia_),
            "iterations": int(km.n_iter_), "vcpu_s": cores * wall}  # fmt: skip


def run_shoal(
    X: np.ndarray,
    C0: np.ndarray,
    w: int,
    c: int,
    rounds: int,
    url: str,
    autotune: bool = False,
    parallel: str = "threads",
) -> dict[str, Any]:
    t = time.perf_counter()
    r = train("kmeans", X, k=len(C0), workers=w, cores=c, rounds=rounds, store="redis", redis_url=url,
              backend="local", init=C0, autotune=autotune, parallel=parallel)  # fmt: skip
    wall = time.perf_counter() - t
    # A round's time: the slowest worker's compute and synchronisation; the median over the (last segment's) rounds.
    per_round = np.max([p["round_s"] for p in r.per_worker], axis=0)
    sync = max(p["sync_s"] for p in r.per_worker) / len(per_round)
    assert r.cost is not None
    return {"iter_ms": float(np.median(per_round)) * 1e3, "rounds_s": float(np.sum(per_round)),
            "first_iter_ms": per_round[0] * 1e3,
            "sync_ms": sync * 1e3, "to_target_s": wall,
            "inertia": r.losses[-1], "iterations": rounds - 1, "vcpu_s": r.cost["user_bill"]["vcpu_s"],
            "user_bill_usd": r.cost["user_bill"]["usd"], "resource_usd": r.cost["resource_cost"]["usd"],
            "final_inertia": r.metrics["inertia"], "workers_per_round": r.workers_per_round,
            "scale_ins": r.scale_ins, "released": [x.get("released") for x in r.scale_ins]}  # fmt: skip


def run_lithops(X: np.ndarray, C0: np.ndarray, w: int, rounds: int, tmp: str) -> dict[str, Any]:
    paths = []
    for j, part in enumerate(np.array_split(X, w)):
        paths.append(os.path.join(tmp, f"shard{w}-{j}.npy"))
        np.save(paths[-1], part)
    algo = KMeans(n_features=X.shape[1], k=len(C0))
    r = run_rounds(
        w, lithops_partial, algo.initial_model(C0), lambda m: algo.centers(m).copy(), algo.apply, paths, rounds
    )
    iter_s, lost, wall, loss, call_s = r["iter_s"], r["lost"], r["wall"], r["loss"], r["call_s"]
    return {"iter_ms": float(np.median(iter_s[1:] or iter_s)) * 1e3, "first_iter_ms": iter_s[0] * 1e3,
            "lost_maps": len(lost),
            "to_target_s": wall, "inertia": loss, "iterations": rounds - 1, "vcpu_s": call_s,
            "held_vcpu_s": w * wall}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dims", type=int, default=16)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--spread", type=float, default=3.0)
    ap.add_argument("--target", type=float, default=0.005, help="relative distance to the converged inertia")
    ap.add_argument("--converge", type=int, default=60, help="Lloyd iterations that define 'converged'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iter-rounds", type=int, default=30, help="rounds of the jobs that measure time per iteration")
    ap.add_argument("--autotune-rounds", type=int, default=40, help="rounds of the fixed vs autotuned 2x1 jobs")
    ap.add_argument("--only", nargs="+", default=["sklearn", "shoal", "lithops"])
    args = ap.parse_args()
    X, _ = make_blobs(args.rows, args.dims, centers=args.k, spread=args.spread, seed=0)
    C0 = X[np.sort(np.random.default_rng(0).choice(len(X), args.k, replace=False))].copy()
    ref = reference_losses(X, C0, args.converge)
    target = ref[-1] * (1 + args.target)
    hit = next(i for i, v in enumerate(ref) if v <= target)  # losses[i]: inertia after i updates
    rounds = hit + 1  # the round that computes the inertia of the centres after `hit` updates
    console.print(f"{args.rows} x {args.dims}, k={args.k}: target inertia {target:.6e} after {hit} updates")

    configs: list[tuple[str, int, int]] = []
    if "sklearn" in args.only:
        configs += [("sklearn", 1, 1), ("sklearn", 1, 2)]
    if "shoal" in args.only:
        configs += [("shoal", w, c) for w, c in GRID] + [("shoal-proc", 1, 2)]
        configs += [("shoal-fixed", 2, 1), ("shoal-autotune", 2, 1)]
    if "lithops" in args.only:
        configs += [("lithops", 1, 1), ("lithops", 2, 1)]

    def one(system: str, w: int, c: int, url: str, tmp: str) -> dict[str, Any]:
        if system == "sklearn":
            res = run_sklearn(X, C0, c, hit)
            steady = run_sklearn(X, C0, c, args.iter_rounds)
        elif system in ("shoal", "shoal-proc"):
            par = "processes" if system == "shoal-proc" else "threads"
            res = run_shoal(X, C0, w, c, rounds, url, parallel=par)
            steady = run_shoal(X, C0, w, c, args.iter_rounds, url, parallel=par)
        elif system.startswith("shoal-"):
            return run_shoal(X, C0, w, c, args.autotune_rounds, url, autotune=system == "shoal-autotune")
        else:
            return run_lithops(X, C0, w, rounds, tmp)
        return res | {"iter_ms_to_target": res["iter_ms"], "iter_ms": steady["iter_ms"]}

    runs, s = run_configs(configs, args.repeats, one, lambda r: f"{r['iter_ms']:.1f} ms/iter, "
                          f"{r['to_target_s']:.2f} s to target, inertia {r['inertia']:.6e}")  # fmt: skip

    rows = []
    for key in runs:
        row = [key, fmt(s(key, "iter_ms"), 1), fmt(s(key, "to_target_s"), 3), fmt(s(key, "vcpu_s"), 3)]
        if key.startswith("shoal"):
            row.append(f"{s(key, 'user_bill_usd')['median']:.3g}")
        else:  # * vCPU-seconds at the default price, no memory, no request fee
            row.append(f"{s(key, 'vcpu_s')['median'] * DEFAULT_PRICES.per_vcpu_s:.3g}*")
        row.append(f"{s(key, 'inertia')['median']:.7e}")
        row.append(", ".join(f"{r['other_cores']:.2f}" for r in runs[key]))
        rows.append(row)
    cols = ["config (W x C)", "ms / iteration", "s to target", "vCPU-s", "USD", "last inertia", "other cores"]
    table(f"k-means Lloyd, {args.rows}x{args.dims}, k={args.k}, {rounds} rounds to the target (shoal-fixed/-autotune:"
          f" {args.autotune_rounds} rounds; median, min-max)", cols, rows)  # fmt: skip
    floor = {c: s(f"sklearn 1x{c}", "iter_ms")["median"] for c in (1, 2) if f"sklearn 1x{c}" in runs}
    ratios = {}
    for key in runs:
        if key.startswith(("shoal ", "shoal-proc ")):
            w, c = (int(x) for x in key.split()[1].split("x"))
            if w * c in floor:
                ratios[f"{key} / sklearn 1x{w * c}"] = s(key, "iter_ms")["median"] / floor[w * c]
            lk = f"lithops {w}x1"
            if c == 1 and lk in runs:
                ratios[f"{lk} / {key}"] = s(lk, "iter_ms")["median"] / s(key, "iter_ms")["median"]
    for name, v in ratios.items():
        console.print(f"{name}: {v:.2f}x per iteration")
    save_results(
        "train_kmeans",
        args,
        {"target_inertia": target, "updates_to_target": hit, "rounds": rounds, "reference_losses": ref},
        runs,
        ratios,
        s,
    )


if __name__ == "__main__":
    main()
