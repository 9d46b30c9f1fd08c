"""The plan space: every grouping the planner may choose, and only valid ones."""

import pytest

import shoal
from shoal.predict.plan_space import groupings, plan_label


def chain(n: int) -> shoal.App:
    app = shoal.App(f"chain{n}")
    prev = None
    for i in range(n):
        prev = app.stage(lambda x: x, name=f"s{i}", after=prev if prev is not None else ())
    return app


def diamond() -> shoal.App:
    app = shoal.App("diamond")
    src = app.stage(lambda x: x, name="src")
    left = app.stage(lambda x: x, name="left", after=src)
    right = app.stage(lambda x: x, name="right", after=src)
    app.stage(lambda a, b: a, name="merge", after=[left, right])
    return app


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_a_chain_has_two_to_the_n_minus_one_groupings(n):
    """Only contiguous runs are connected in a chain, so exhaustive and contiguous enumeration agree."""
    app = chain(n)
    every = list(groupings(app, exhaustive=True))
    assert len(every) == 2 ** (n - 1)
    assert every == list(groupings(app, exhaustive=False))
    assert plan_label(every[0], app) == "fine"
    assert plan_label(every[-1], app) == ("coarse" if n > 1 else "fine")


def test_the_diamond_groupings_are_exactly_the_valid_partitions():
    app = diamond()
    labels = {plan_label(g, app) for g in groupings(app)}
    # 15 partitions of 4 stages; invalid: a group that is not connected ({left,right}, {src,merge}, ...) or groups
    # that feed each other in a cycle ({src,merge} with left/right apart is both)
    assert "fine" in labels and "coarse" in labels
    assert "src+left,right,merge" in labels
    assert "src+left+right,merge" in labels
    assert "src,left+right,merge" not in labels  # left and right share no edge
    assert "src+merge,left,right" not in labels
    assert "src,left+merge,right" in labels
    for g in groupings(app):
        shoal.Plan(app, g)  # every one is accepted
    assert len(labels) == len(list(groupings(app)))


def test_large_apps_fall_back_to_contiguous_groupings():
    app = chain(10)
    assert len(list(groupings(app))) == 2**9
