"""Binary logistic regression by (mini-batch) gradient descent with an L2 penalty.

The model vector is the weights followed by the intercept. A worker's contribution is the gradient of the summed
log-loss over the rows it used, the summed loss and the row count; the update divides by the total row count, so W
workers with batch b take exactly the step one worker would take with batch W·b.

It minimises ``mean(log-loss) + alpha/2 · ||w||²``, which is scikit-learn's ``LogisticRegression(C=1/(alpha·n))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoal.train.algorithms._parallel import block_sum

__all__ = ["LogReg", "log_loss_terms"]


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


@dataclass
class LogReg:
    n_features: int
    lr: float = 0.5
    alpha: float = 1e-4
    batch_size: int = 0
    name: str = "logreg"

    def initial_model(self) -> np.ndarray:
        return np.zeros(self.n_features + 1)

    def _block(self, model: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        w, b = model[:-1], model[-1]
        z = X @ w + b
        r = _sigmoid(z) - y
        return np.concatenate([X.T @ r, [r.sum(), log_loss_terms(z, y).sum(), len(X)]])

    def partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int) -> np.ndarray:
        return block_sum(lambda xb, yb: self._block(model, xb, _labels(yb)), X, _labels(y), cores)

    def apply(self, model: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, float]:
        d = self.n_features
        n = max(float(total[-1]), 1.0)
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
        new, loss = self.apply(model, part)
        return new - model, loss

    def score_partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int) -> np.ndarray:
        def block(xb: np.ndarray, yb_: np.ndarray | None) -> np.ndarray:
            yb = _labels(yb_)
            z = xb @ model[:-1] + model[-1]
            return np.array([log_loss_terms(z, yb).sum(), ((z > 0) == (yb > 0.5)).sum(), len(xb)], dtype=np.float64)

        return block_sum(block, X, _labels(y), cores)

    def score(self, model: np.ndarray, total: np.ndarray) -> dict[str, float]:
        n = max(float(total[2]), 1.0)
        return {"log_loss": float(total[0]) / n, "accuracy": float(total[1]) / n, "rows": float(total[2])}
