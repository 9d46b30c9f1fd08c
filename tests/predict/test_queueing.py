"""Queueing formulas against closed forms: M/M/1, M/M/c (Erlang C by its factorial sum), M/D/1 (Pollaczek-Khinchine)."""

from __future__ import annotations

import math

import pytest

from shoal.predict.queueing import conditional_wait_scv, erlang_b, erlang_c, ggc_wait


def erlang_c_by_sum(c: int, a: float) -> float:
    """The textbook formula, independent of the recursion under test."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mm1_waits_with_probability_rho_and_mean_rho_over_mu_minus_lambda() -> None:
    lam, mu = 7.0, 10.0
    w = ggc_wait(lam, 1 / mu, 1)
    assert w.p_wait == pytest.approx(lam / mu)
    assert w.mean_s == pytest.approx((lam / mu) / (mu - lam))
    assert w.conditional_mean_s == pytest.approx(1 / (mu - lam))  # the M/M/1 wait, given a wait, is Exp(mu - lambda)
    assert w.utilisation == pytest.approx(0.7) and w.stable


@pytest.mark.parametrize(("c", "a"), [(2, 1.0), (5, 4.0), (10, 9.5), (30, 20.0)])
def test_erlang_c_matches_the_factorial_sum(c: int, a: float) -> None:
    assert erlang_c(c, a) == pytest.approx(erlang_c_by_sum(c, a), rel=1e-12)


def test_known_values() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    # M/M/2 with lambda 1, mu 1: Wq = C / (c mu - lambda) = 1/3
    assert ggc_wait(1.0, 1.0, 2).mean_s == pytest.approx(1 / 3)


def test_erlang_c_stays_finite_for_many_servers() -> None:
    v = erlang_c(500, 480.0)
    assert 0.0 < v < 1.0


def test_allen_cunneen_is_exact_for_md1() -> None:
    """M/D/1: Wq = rho S / (2 (1 - rho)); Allen-Cunneen with cs2 = 0 gives the same for one server."""
    lam, s = 8.0, 0.1
    rho = lam * s
    assert ggc_wait(lam, s, 1, ca2=1.0, cs2=0.0).mean_s == pytest.approx(rho * s / (2 * (1 - rho)))


def test_more_load_or_variability_waits_longer_and_more_servers_shorter() -> None:
    waits = [ggc_wait(r, 0.01, 4).mean_s for r in (10, 100, 200, 300, 390)]
    assert waits == sorted(waits)
    assert ggc_wait(300, 0.01, 4, ca2=4.0).mean_s > ggc_wait(300, 0.01, 4, ca2=1.0).mean_s
    by_servers = [ggc_wait(300, 0.01, c).mean_s for c in (4, 5, 8, 16)]
    assert by_servers == sorted(by_servers, reverse=True)


def test_an_unstable_queue_waits_forever() -> None:
    w = ggc_wait(100.0, 0.05, 4)
    assert not w.stable and w.mean_s == math.inf and w.utilisation == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("args", "match"),
    [((1.0, 0.0, 1), "service time"), ((-1.0, 0.1, 1), "arrival rate"), ((1.0, 0.1, 0), "at least one server")],
)
def test_bad_inputs_are_refused(args: tuple[float, float, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ggc_wait(*args)


def test_the_conditional_wait_is_exponential_for_mm1_and_lighter_for_steadier_service() -> None:
    mu = 10.0
    assert conditional_wait_scv(7.0, 1 / mu, 2 / mu**2, 6 / mu**3) == pytest.approx(1.0)
    d = (0.1, 0.01, 0.001)  # deterministic service of 100 ms
    assert conditional_wait_scv(0.0, *d) == pytest.approx(1 / 3)  # the residual of a uniform
    by_load = [conditional_wait_scv(r, *d) for r in (0.0, 2.0, 5.0, 8.0, 9.9)]
    assert by_load == sorted(by_load) and by_load[-1] < 1.0
    assert conditional_wait_scv(5.0, *d, servers=4) == pytest.approx(
        conditional_wait_scv(5.0, 0.025, 0.025**2, 0.025**3)
    )
