"""Serverless logistic regression (full-batch GD and L-BFGS): Shoal against scikit-learn and against Lithops.

- ``numpy``: the same gradient-descent loop in this process with Shoal's kernel (``LogReg.partial``/``apply``), C
  threads: the floor per iteration for *this* algorithm.
- ``sklearn``: ``LogisticRegression(C=1/(alpha n), solver="lbfgs")`` with its threads held to C: what a user would
  run in one process. L-BFGS is a better optimiser than gradient descent, so per *iteration* it is not the same
  work; its time to the target is the one a user compares with.
- ``shoal``: ``shoal.train.train("logreg", ...)`` with W workers of C cores, back end ``local``, a redis-server
  started once for the benchmark; a fresh executor per job (start-up included in the time to target).
  ``shoal-lbfgs``: the same with ``solver="lbfgs"`` (workers sum loss and gradient, worker 0 takes the L-BFGS step),
  as many rounds as the same solver needs in one process to reach the target; ``-proc``: C processes per worker.
- ``lithops``: one ``map`` per iteration over W shards on Lithops' ``localhost`` back end, each call reading its
  shard and returning the gradient sums (Shoal's kernel), reduced and applied in the driver. It runs
  ``--lithops-rounds`` iterations; its time to target is extrapolated from them (stated in the output).

The target is the log-loss within ``--target`` (relative) of scikit-learn's optimum (same penalty).

    .venv/bin/python benchmarks/train_logreg.py [--rows 200000] [--dims 32] [--repeats 3]
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

from shoal.train import make_logistic, train
from shoal.train.algorithms.logreg import LogReg, log_loss_terms

GRID = [(1, 1), (1, 2), (2, 1)]


def lithops_partial(path: str, model: np.ndarray) -> np.ndarray:
    """One Lithops call: this shard's gradient sums, loss sum and row count (the shard is read on every call)."""
    Xy = np.load(path, allow_pickle=False)
    return LogReg(n_features=Xy.shape[1] - 1).partial(model, Xy[:, :-1], Xy[:, -1], 1)


def gd_losses(X: np.ndarray, y: np.ndarray, lr: float, alpha: float, rounds: int, cores: int = 1) -> list[float]:
    algo = LogReg(n_features=X.shape[1], lr=lr, alpha=alpha)
    model, out = algo.initial_model(), []
    for _ in range(rounds):
        model, loss = algo.apply(model, algo.partial(model, X, y, cores))
        out.append(loss)
    return out


def lbfgs_losses(X: np.ndarray, y: np.ndarray, alpha: float, rounds: int) -> list[float]:
    """The losses of Shoal's L-BFGS solver in one process (the iterates every Shoal job makes)."""
    algo = LogReg(n_features=X.shape[1], alpha=alpha, solver="lbfgs")
    model, out = algo.initial_model(), []
    for _ in range(rounds):
        model, loss = algo.apply(model, algo.partial(model, X, y, 1))
        out.append(loss)
    return out


def run_numpy(X: np.ndarray, y: np.ndarray, c: int, rounds: int, lr: float, alpha: float) -> dict[str, Any]:
    t = time.perf_counter()
    losses = gd_losses(X, y, lr, alpha, rounds, c)
    wall = time.perf_counter() - t
    return {"iter_ms": wall / rounds * 1e3, "to_target_s": wall, "loss": losses[-1], "vcpu_s": c * wall}


def run_sklearn(X: np.ndarray, y: np.ndarray, c: int, alpha: float, target: float) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    # The fewest L-BFGS iterations that reach the target (a user would not know them; this flatters scikit-learn).
    with threadpool_limits(c):
        for iters in range(1, 200):
            t = time.perf_counter()
            m = LogisticRegression(C=1 / (alpha * len(X)), max_iter=iters, tol=0).fit(X, y)
            wall = time.perf_counter() - t
            z = X @ m.coef_[0] + m.intercept_[0]
            loss = float(log_loss_terms(z, y).mean()) + alpha / 2 * float(m.coef_[0] @ m.coef_[0])
            if loss <= target:
                break
    return {"iter_ms": wall / int(m.n_iter_[0]) * 1e3, "to_target_s": wall, "loss": loss, "iterations": iters,
            "vcpu_s": c * wall}  # fmt: skip


def run_shoal(
    X: np.ndarray,
    y: np.ndarray,
    w: int,
    c: int,
    rounds: int,
    url: str,
    lr: float,
    alpha: float,
    solver: str = "gd",
    parallel: str = "threads",
) -> dict[str, Any]:
    t = time.perf_counter()
    r = train("logreg", X, y, workers=w, cores=c, rounds=rounds, store="redis", redis_url=url, backend="local",
              lr=lr, alpha=alpha, solver=solver, parallel=parallel)  # fmt: skip
    wall = time.perf_counter() - t
    per_round = np.max([p["round_s"] for p in r.per_worker], axis=0)  # the slowest worker's round
    assert r.cost is not None
    sync_ms = max(p["sync_s"] for p in r.per_worker) / rounds * 1e3
    return {"iter_ms": float(np.median(per_round)) * 1e3, "rounds_s": float(np.sum(per_round)), "sync_ms": sync_ms,
            "to_target_s": wall, "loss": r.losses[-1], "vcpu_s": r.cost["user_bill"]["vcpu_s"],
            "user_bill_usd": r.cost["user_bill"]["usd"], "rounds": rounds,
            "final_log_loss": r.metrics["log_loss"]}  # fmt: skip


def run_lithops(X: np.ndarray, y: np.ndarray, w: int, rounds: int, lr: float, alpha: float, tmp: str) -> dict[str, Any]:
    paths = []
    for j, part in enumerate(np.array_split(np.column_stack([X, y]), w)):
        paths.append(os.path.join(tmp, f"lr-shard{w}-{j}.npy"))
        np.save(paths[-1], part)
    algo = LogReg(n_features=X.shape[1], lr=lr, alpha=alpha)
    r = run_rounds(w, lithops_partial, algo.initial_model(), lambda m: m, algo.apply, paths, rounds)
    iter_s, lost, wall, loss, call_s = r["iter_s"], r["lost"], r["wall"], r["loss"], r["call_s"]
    return {"iter_ms": float(np.median(iter_s[1:] or iter_s)) * 1e3, "first_iter_ms": iter_s[0] * 1e3,
            "lost_maps": len(lost),
            "measured_s": wall, "measured_rounds": rounds, "loss": loss, "vcpu_s_measured": call_s}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dims", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--target", type=float, default=0.01, help="relative distance to scikit-learn's optimum")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lithops-rounds", type=int, default=10)
    ap.add_argument("--only", nargs="+", default=["numpy", "sklearn", "shoal", "lithops"])
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    X, y = make_logistic(args.rows, args.dims, seed=0)
    m = LogisticRegression(C=1 / (args.alpha * len(X)), max_iter=1000, tol=1e-10).fit(X, y)
    opt = float(log_loss_terms(X @ m.coef_[0] + m.intercept_[0], y).mean())
    opt += args.alpha / 2 * float(m.coef_[0] @ m.coef_[0])
    target = opt * (1 + args.target)
    ref = gd_losses(X, y, args.lr, args.alpha, 500)
    # losses[r] is the objective's data term at the model before update r; the penalty is tiny at alpha=1e-4
    hit = next(i for i, v in enumerate(ref) if v <= target)
    rounds = hit + 1
    ref_lbfgs = lbfgs_losses(X, y, args.alpha, 100)
    lbfgs_rounds = next(i for i, v in enumerate(ref_lbfgs) if v <= target) + 1
    console.print(f"{args.rows} x {args.dims}: optimum {opt:.6f}, target {target:.6f}, GD needs {rounds} rounds, "
                  f"L-BFGS {lbfgs_rounds} (loss and gradient evaluations)")  # fmt: skip

    configs: list[tuple[str, int, int]] = []
    if "numpy" in args.only:
        configs += [("numpy", 1, 1), ("numpy", 1, 2)]
    if "sklearn" in args.only:
        configs += [("sklearn", 1, 1), ("sklearn", 1, 2)]
    if "shoal" in args.only:
        configs += [("shoal", w, c) for w, c in GRID] + [("shoal-proc", 1, 2)]
        configs += [("shoal-lbfgs", w, c) for w, c in GRID] + [("shoal-lbfgs-proc", 1, 2)]
    if "lithops" in args.only:
        configs += [("lithops", 1, 1), ("lithops", 2, 1)]

    def one(system: str, w: int, c: int, url: str, tmp: str) -> dict[str, Any]:
        if system == "numpy":
            return run_numpy(X, y, c, rounds, args.lr, args.alpha)
        if system == "sklearn":
            return run_sklearn(X, y, c, args.alpha, target)
        if system.startswith("shoal"):
            solver = "lbfgs" if "lbfgs" in system else "gd"
            par = "processes" if system.endswith("-proc") else "threads"
            n = lbfgs_rounds if solver == "lbfgs" else rounds
            return run_shoal(X, y, w, c, n, url, args.lr, args.alpha, solver, par)
        res = run_lithops(X, y, w, args.lithops_rounds, args.lr, args.alpha, tmp)
        per = res["measured_s"] / res["measured_rounds"]
        res["to_target_s"] = per * rounds  # extrapolated: the same per-iteration cost
        res["vcpu_s"] = res["vcpu_s_measured"] / res["measured_rounds"] * rounds
        return res

    runs, s = run_configs(configs, args.repeats, one,
                          lambda r: f"{r['iter_ms']:.1f} ms/iter, {r['to_target_s']:.2f} s to target")  # fmt: skip

    rows = [[key, fmt(s(key, "iter_ms"), 1), fmt(s(key, "to_target_s"), 3),
             fmt(s(key, "rounds_s"), 3) if "rounds_s" in runs[key][0] else "-", fmt(s(key, "vcpu_s"), 3),
             ", ".join(f"{r['other_cores']:.2f}" for r in runs[key])] for key in runs]  # fmt: skip
    table(f"logreg, {args.rows}x{args.dims}, GD {rounds} rounds, L-BFGS {lbfgs_rounds}, to within {args.target:g} "
          "of the optimum (lithops: time to target extrapolated; median, min-max)",
          ["config (W x C)", "ms / iteration", "s to target", "s in rounds", "vCPU-s", "other cores"],
          rows)  # fmt: skip
    ratios = {}
    for key in runs:
        if key.startswith("shoal"):
            w, c = (int(x) for x in key.split()[1].split("x"))
            if "lbfgs" in key and f"sklearn 1x{w * c}" in runs:  # the comparison that matters: time to target
                ratios[f"{key} / sklearn 1x{w * c} to target"] = (
                    s(key, "to_target_s")["median"] / s(f"sklearn 1x{w * c}", "to_target_s")["median"]
                )
                continue
            for floor in ("numpy", "sklearn"):
                if f"{floor} 1x{w * c}" in runs:
                    f_ms = s(f"{floor} 1x{w * c}", "iter_ms")["median"]
                    ratios[f"{key} / {floor} 1x{w * c} per iteration"] = s(key, "iter_ms")["median"] / f_ms
                    f_s = s(f"{floor} 1x{w * c}", "to_target_s")["median"]
                    ratios[f"{key} / {floor} 1x{w * c} to target"] = s(key, "to_target_s")["median"] / f_s
            if c == 1 and f"lithops {w}x1" in runs:
                ratios[f"lithops {w}x1 / {key} per iteration"] = (
                    s(f"lithops {w}x1", "iter_ms")["median"] / s(key, "iter_ms")["median"]
                )
    for name, v in ratios.items():
        console.print(f"{name}: {v:.2f}x")
    save_results(
        "train_logreg",
        args,
        {
            "optimum": opt,
            "target_loss": target,
            "rounds": rounds,
            "lbfgs_rounds": lbfgs_rounds,
            "lbfgs_losses": ref_lbfgs[:lbfgs_rounds],
        },
        runs,
        ratios,
        s,
    )


if __name__ == "__main__":
    main()
