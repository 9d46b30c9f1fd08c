"""Closed forms of queueing theory the analytical predictor is built on.

- Erlang C: the probability that an arrival waits in an M/M/c queue (computed through the Erlang B recursion,
  which is stable for hundreds of servers where the textbook sum of factorials overflows).
- M/M/c mean wait: ``C(c, a) / (c mu - lambda)``.
- G/G/c by Allen and Cunneen: the M/M/c wait scaled by ``(ca^2 + cs^2) / 2``, the squared coefficients of variation
  of inter-arrival and service times (exact for M/M/c, close for M/G/c; Allen, *Probability, Statistics and Queueing
  Theory*, 1990).
- The shape of the wait of those who wait: its squared coefficient of variation from the M/G/1 moments of Takacs
  (``E[W] = lambda E[S^2] / (2 (1 - rho))``, ``E[W^2] = 2 E[W]^2 + lambda E[S^3] / (3 (1 - rho))``, ``P(W > 0) = rho``),
  with c servers taken as one server c times as fast. It is 1 for exponential service (the M/M/c wait, given a wait,
  is exponential) and below 1 for less variable service (1/3 for deterministic service at light load, the residual of
  a uniform), where an exponential tail would overstate the p99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["erlang_b", "erlang_c", "GGcWait", "ggc_wait", "conditional_wait_scv"]


def _check(servers: int, offered: float) -> None:
    if servers < 1:
        raise ValueError(f"a queue needs at least one server, got {servers!r}")
    if not (math.isfinite(offered) and offered >= 0):
        raise ValueError(f"offered load must be a finite number >= 0 (Erlangs), got {offered!r}")


def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability of M/M/c/c with ``offered = lambda / mu`` Erlangs."""
    _check(servers, offered)
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(servers: int, offered: float) -> float:
    """Probability of waiting in M/M/c; 1 when the queue is not stable (offered >= servers)."""
    _check(servers, offered)
    if offered >= servers:
        return 1.0
    b = erlang_b(servers, offered)
    rho = offered / servers
    return b / (1.0 - rho + rho * b)


@dataclass(frozen=True)
class GGcWait:
    """Waiting in a G/G/c queue: P(wait > 0), mean wait, and the mean wait of those who wait (seconds)."""

    p_wait: float
    mean_s: float
    utilisation: float

    @property
    def stable(self) -> bool:
        return self.utilisation < 1.0

    @property
    def conditional_mean_s(self) -> float:
        return self.mean_s / self.p_wait if self.p_wait > 0 else 0.0


def ggc_wait(rate: float, service_s: float, servers: int, ca2: float = 1.0, cs2: float = 1.0) -> GGcWait:
    """Allen-Cunneen approximation of the wait in G/G/c (see the module); mean wait is infinite when unstable."""
    if servers < 1:
        raise ValueError(f"a queue needs at least one server, got {servers!r}")
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"arrival rate must be a finite number >= 0 per second, got {rate!r}")
    if not (math.isfinite(service_s) and service_s > 0):
        raise ValueError(f"service time must be a finite number > 0 seconds, got {service_s!r}")
    if ca2 < 0 or cs2 < 0:
        raise ValueError(f"squared coefficients of variation must be >= 0, got ca2={ca2!r}, cs2={cs2!r}")
    offered = rate * service_s
    rho = offered / servers
    if rate == 0:
        return GGcWait(0.0, 0.0, 0.0)
    if rho >= 1.0:
        return GGcWait(1.0, math.inf, rho)
    c = erlang_c(servers, offered)
    mmc = c * service_s / (servers - offered)  # C / (c mu - lambda), with mu = 1 / service
    return GGcWait(c, mmc * (ca2 + cs2) / 2.0, rho)


def conditional_wait_scv(rate: float, m1: float, m2: float, m3: float, servers: int = 1) -> float:
    """SCV of the wait of a request that waits, from the service moments ``E[S^k]`` (see the module); 1 if unstable."""
    if servers < 1 or not (m1 > 0 and m2 > 0 and m3 > 0):
        raise ValueError("need servers >= 1 and positive service moments")
    c = float(servers)
    m1, m2, m3 = m1 / c, m2 / c**2, m3 / c**3
    rho = rate * m1
    if rate <= 0:
        return 4 * m1 * m3 / (3 * m2 * m2) - 1.0  # the light-traffic limit: the residual of a service
    if rho >= 1.0:
        return 1.0
    w1 = rate * m2 / (2 * (1 - rho))
    w2 = 2 * w1 * w1 + rate * m3 / (3 * (1 - rho))
    return max(0.0, (w2 / rho) / (w1 / rho) ** 2 - 1.0)
