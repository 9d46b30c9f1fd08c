"""Binary logistic regression with an L2 penalty: (mini-batch) gradient descent, or full-batch L-BFGS.

The model vector is the weights followed by the intercept. A worker's contribution is the gradient of the summed
log-loss over the rows it used, the summed loss and the row count; the update divides by the total row count, so W
workers with batch b take exactly the step one worker would take with batch W·b.

It minimises ``mean(log-loss) + alpha/2 · ||w||²``, which is scikit-learn's ``LogisticRegression(C=1/(alpha·n))``.

``solver="lbfgs"`` (full batch, BSP): the contributions are the same (loss and gradient at the model), but the next
model comes from a quasi-Newton step (:class:`LBFGS`) instead of a fixed learning rate. Its state (the last curvature
pairs) lives in the one worker that applies updates, so the job runs in parameter-server mode (``stateful_apply``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shoal.train.algorithms._parallel import ProcessCores, run_blocks, with_constant_column

__all__ = ["LBFGS", "SOLVERS", "LogReg", "log_loss_terms"]

SOLVERS = ("gd", "lbfgs")


def log_loss_terms(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row log-loss for logits ``z`` and labels ``y`` in {0, 1}, stable for large |z|."""
    out: np.ndarray = np.logaddexp(0.0, z) - y * z
    return out


def _labels(y: np.ndarray | None) -> np.ndarray:
    if y is None:
        raise ValueError("logistic regression needs labels")
    return y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class LBFGS:
    """L-BFGS (Nocedal & Wright, algorithm 7.4) turned inside out: :meth:`next` takes the loss and gradient at the
    point it proposed last and returns the next point to evaluate, so that each evaluation is one BSP round.

    Line search: backtracking on the Armijo condition (halve the step), the first step of a direction 1 (scaled
    by the usual ``s·y / y·y``; 1/||g|| on the very first). A pair with ``s·y <= 0`` is skipped (keeps H positive
    definite). As with gradient descent, the job's model is the last point proposed, scored after the last round.
    """

    def __init__(self, memory: int = 10, c1: float = 1e-4) -> None:
        self.memory, self.c1 = memory, c1
        self.s: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.x: np.ndarray | None = None  # the last accepted point, its loss and gradient
        self.f = 0.0
        self.g: np.ndarray | None = None
        self.p: np.ndarray | None = None  # the search direction and the step being tried
        self.t = 1.0

    def _direction(self, g: np.ndarray) -> np.ndarray:
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(self.s), reversed(self.y), strict=True):
            a = float(s @ q) / float(y @ s)
            alphas.append(a)
            q -= a * y
        if self.s:
            q *= float(self.s[-1] @ self.y[-1]) / float(self.y[-1] @ self.y[-1])
        else:
            q /= max(float(np.linalg.norm(g)), 1e-12)
        for (s, y), a in zip(zip(self.s, self.y, strict=True), reversed(alphas), strict=True):
            b = float(y @ q) / float(y @ s)
            q += (a - b) * s
        return -q

    def next(self, x: np.ndarray, f: float, g: np.ndarray) -> np.ndarray:
        """The next point to evaluate, given the loss ``f`` and gradient ``g`` at ``x`` (the point proposed last)."""
        if self.x is not None and self.p is not None and self.g is not None:
            if f > self.f + self.c1 * self.t * float(self.g @ self.p) and self.t > 1e-10:
                self.t *= 0.5  # not enough decrease: backtrack from the accepted point
                return self.x + self.t * self.p
            s, yv = x - self.x, g - self.g
            if float(s @ yv) > 1e-12:
                self.s.append(s)
                self.y.append(yv)
                if len(self.s) > self.memory:
                    self.s.pop(0)
                    self.y.pop(0)
        self.x, self.f, self.g = x.copy(), f, g.copy()
        self.p, self.t = self._direction(g), 1.0
        nxt: np.ndarray = self.x + self.p
        return nxt


@dataclass
class LogReg:
    n_features: int
    lr: float = 0.5
    alpha: float = 1e-4
    batch_size: int = 0
    #: ``gd``: (mini-batch) gradient descent with step ``lr``; ``lbfgs``: full-batch L-BFGS (``lr`` unused).
    solver: str = "gd"
    name: str = "logreg"
    #: Rows per block of the kernel (its temporaries stay in cache).
    block_rows: int = 4096
    _lbfgs: LBFGS | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}: use one of {', '.join(SOLVERS)}")
        if self.solver == "lbfgs" and self.batch_size:
            raise ValueError("the lbfgs solver is full-batch: leave batch_size at 0 (or use solver gd)")

    @property
    def stateful_apply(self) -> bool:
        """True when ``apply`` keeps state between rounds (L-BFGS): only one worker may apply updates."""
        return self.solver == "lbfgs"

    def initial_model(self) -> np.ndarray:
        return np.zeros(self.n_features + 1)

    # -- the kernel: the shard is kept with a constant 1 appended to every row, so that one product gives the logits
    # (weights and intercept at once) and one more the gradient of both.
    def prepare(self, X: np.ndarray, cache: bool = True) -> np.ndarray:
        """The shard as the kernel reads it: rows with 1 appended (float64, C order). Idempotent."""
        return with_constant_column(self, X, self.n_features, 1.0, cache)

    def block_width(self) -> int:
        return self.n_features + 3

    def block_fn(self, kind: str, model: np.ndarray) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
        m = np.ascontiguousarray(model, dtype=np.float64)
        if kind == "score":

            def score(xb: np.ndarray, yb_: np.ndarray | None) -> np.ndarray:
                yb = _labels(yb_)
                z = xb @ m
                return np.array([log_loss_terms(z, yb).sum(), ((z > 0) == (yb > 0.5)).sum(), len(xb)])

            return score

        def grad(xb: np.ndarray, yb_: np.ndarray | None) -> np.ndarray:
            yb = _labels(yb_)
            z = xb @ m
            r = _sigmoid(z) - yb
            return np.concatenate([r @ xb, [log_loss_terms(z, yb).sum(), len(xb)]])

        return grad

    def partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int | ProcessCores) -> np.ndarray:
        return run_blocks(self, "partial", model, self.prepare(X), _labels(y), cores)

    def _objective(self, model: np.ndarray, total: np.ndarray) -> tuple[float, np.ndarray]:
        """mean(log-loss) + alpha/2·||w||² and its gradient, from the summed contributions."""
        d = self.n_features
        n = max(float(total[-1]), 1.0)
        w = model[:-1]
        g = total[: d + 1] / n
        g[:d] += self.alpha * w
        return float(total[d + 1]) / n + 0.5 * self.alpha * float(w @ w), g

    def apply(self, model: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, float]:
        d = self.n_features
        n = max(float(total[-1]), 1.0)
        if self.solver == "lbfgs":
            if self._lbfgs is None:
                self._lbfgs = LBFGS()
            f, g = self._objective(model, total)
            return self._lbfgs.next(model, f, g), float(total[d + 1]) / n
        w, b = model[:-1], model[-1]
        w_new = w - self.lr * (total[:d] / n + self.alpha * w)
        b_new = b - self.lr * total[d] / n
        return np.concatenate([w_new, [b_new]]), float(total[d + 1]) / n

    # -- SSP / ASP: the model is the initial one plus every worker's summed steps ------------------------------------
    def update_size(self) -> int:
        return self.n_features + 1

    def model_from(self, init: np.ndarray, updates: np.ndarray) -> np.ndarray:
        return np.asarray(init + updates)

    def delta(self, model: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, float]:
        """This worker's step from its own batch: each worker steps on its own, so W workers take W steps a round."""
        if self.solver != "gd":
            raise ValueError("SSP and ASP logistic regression is gradient descent: use solver gd (or sync bsp)")
        new, loss = self.apply(model, part)
        return new - model, loss

    def score_partial(
        self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int | ProcessCores
    ) -> np.ndarray:
        return run_blocks(self, "score", model, self.prepare(X), _labels(y), cores)

    def score(self, model: np.ndarray, total: np.ndarray) -> dict[str, float]:
        n = max(float(total[2]), 1.0)
        return {"log_loss": float(total[0]) / n, "accuracy": float(total[1]) / n, "rows": float(total[2])}
