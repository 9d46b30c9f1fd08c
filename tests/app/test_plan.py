"""Granularity plans: constructors, validation refusals that name the offender, function fields and configs."""

from __future__ import annotations

import pytest

from shoal.app import INPUT, App, AppError, Function, FunctionConfig, Plan, PlanError, Resources, SpecError


def chain() -> App:
    """a -> b -> c"""
    app = App("chain")

    @app.stage(memory_mb=100, vcpu=0.5, max_concurrency=4)
    def a(x):
        return x + 1

    @app.stage(after=a, memory_mb=200, vcpu=2.0, gpu=0.25, gpu_memory_mb=1000, max_concurrency=8)
    def b(x):
        return x * 2

    @app.stage(after=b, memory_mb=300, vcpu=1.0, gpu=0.5, gpu_memory_mb=500, max_concurrency=2)
    def c(x):
        return x - 3

    return app


def diamond() -> App:
    """s -> l, s -> r, (l, r) -> m"""
    app = App("diamond")

    @app.stage()
    def s(x):
        return x

    @app.stage(after=s)
    def l(x):  # noqa: E743
        return x + 1

    @app.stage(after=s)
    def r(x):
        return x * 10

    @app.stage(after=[l, r])
    def m(p, q):
        return p - q

    return app


def triangle() -> App:
    """a -> b -> c and a -> c"""
    app = App("triangle")

    @app.stage()
    def a(x):
        return x

    @app.stage(after=a)
    def b(x):
        return x + 1

    @app.stage(after=[a, b])
    def c(p, q):
        return p * q

    return app


def names(plan: Plan) -> list[str]:
    return [f.name for f in plan.functions]


# -- constructors -------------------------------------------------------------------------------------------------


def test_fine_plan_has_one_function_per_stage():
    app = chain()
    plan = Plan.fine(app)
    assert plan.label == "fine"
    assert names(plan) == ["a", "b", "c"]
    assert [f.stages for f in plan.functions] == [("a",), ("b",), ("c",)]
    assert all(isinstance(f, Function) for f in plan.functions)
    assert plan.app is app


def test_coarse_plan_has_one_function():
    plan = Plan.coarse(chain())
    assert plan.label == "coarse"
    assert names(plan) == ["a+b+c"]
    (f,) = plan.functions
    assert f.stages == ("a", "b", "c")
    assert f.inputs == (INPUT,)
    assert f.outputs == ("c",)
    assert f.upstream == ()


def test_single_stage_app_fine_equals_coarse():
    app = App("one")
    app.stage(lambda x: x, name="only")
    assert names(Plan.fine(app)) == names(Plan.coarse(app)) == ["only"]


def test_parse_fine_coarse_and_groups():
    app = chain()
    assert Plan.parse(app, "fine").label == "fine"
    assert names(Plan.parse(app, " coarse ")) == ["a+b+c"]
    plan = Plan.parse(app, " a + b , c ")
    assert names(plan) == ["a+b", "c"]
    assert plan.label == "a+b,c"


def test_parse_names_functions_in_topological_order_of_their_stages():
    app = chain()
    plan = Plan.parse(app, "c,b+a")  # groups and stages out of order
    assert names(plan) == ["a+b", "c"]  # functions in topological order, stages in app order
    assert plan["a+b"].stages == ("a", "b")
    assert plan.label == "c,b+a"  # the label keeps what was written


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_parse_refuses_empty_plan_text(text):
    with pytest.raises(PlanError, match="empty plan"):
        Plan.parse(chain(), text)


@pytest.mark.parametrize("text", ["a+,b,c", "a+b,,c", "a+b,c,", "+a,b,c"])
def test_parse_refuses_empty_stage_names(text):
    with pytest.raises(PlanError, match="empty stage name"):
        Plan.parse(chain(), text)


def test_plan_passes_config_keywords_through_constructors():
    cfg = FunctionConfig(max_instances=2)
    for plan in (Plan.fine(chain(), default=cfg), Plan.parse(chain(), "a+b,c", default=cfg)):
        assert all(f.config == cfg for f in plan.functions)


# -- validation refusals ------------------------------------------------------------------------------------------


def test_unknown_stage_is_refused_naming_stage_and_group():
    with pytest.raises(PlanError, match=r"group 'a\+x' names 'x', which is not a stage of app 'chain'"):
        Plan.parse(chain(), "a+x,b,c")


def test_stage_in_two_groups_is_refused_naming_both():
    with pytest.raises(PlanError, match=r"stage 'b' is in groups 'a\+b' and 'b\+c'"):
        Plan.parse(chain(), "a+b,b+c")


def test_stage_twice_in_one_group_is_refused():
    with pytest.raises(PlanError, match=r"stage 'a' is in group 'a\+a' twice"):
        Plan.parse(chain(), "a+a,b,c")


def test_missing_stage_is_refused_naming_it():
    with pytest.raises(PlanError, match="stage 'c' is in no group"):
        Plan.parse(chain(), "a,b")
    with pytest.raises(PlanError, match="stage 'b' is in no group"):
        Plan(chain(), [["a"], ["c"]])


def test_disconnected_group_is_refused_naming_group_and_stage():
    with pytest.raises(PlanError, match=r"group 'a\+c' is not connected: stage 'c'"):
        Plan.parse(chain(), "a+c,b")
    # Two siblings share an upstream stage but no edge with each other.
    with pytest.raises(PlanError, match=r"group 'l\+r' is not connected"):
        Plan.parse(diamond(), "s,l+r,m")
    with pytest.raises(PlanError, match=r"group 's\+m' is not connected"):
        Plan.parse(diamond(), "s+m,l,r")


def test_cycle_between_groups_is_refused_naming_the_groups():
    # a+c feeds b (a -> b) and depends on it (b -> c).
    with pytest.raises(PlanError, match="cycle") as info:
        Plan.parse(triangle(), "a+c,b")
    msg = str(info.value)
    assert "'a+c'" in msg and "'b'" in msg
    assert "'a+c' -> 'b' -> 'a+c'" in msg or "'b' -> 'a+c' -> 'b'" in msg


def test_cycle_in_diamond_is_refused_naming_the_groups():
    # s+l+m feeds r (s -> r) and depends on it (r -> m).
    with pytest.raises(PlanError, match="cycle") as info:
        Plan.parse(diamond(), "s+l+m,r")
    msg = str(info.value)
    assert "'s+l+m'" in msg and "'r'" in msg
    # the same, with the groups written the other way round
    with pytest.raises(PlanError, match=r"cycle.*'s\+l\+m'"):
        Plan.parse(diamond(), "r,m+l+s")


def test_valid_non_trivial_groupings_of_the_diamond():
    app = diamond()
    for text in ["s+l,r,m", "s,l+m,r", "s+l+r,m", "s,l+r+m", "s+r,l+m", "s+l+r+m", "fine"]:
        plan = Plan.parse(app, text)
        assert sorted(s for f in plan.functions for s in f.stages) == ["l", "m", "r", "s"]


def test_empty_group_list_and_empty_group_are_refused():
    with pytest.raises(PlanError, match="at least one group"):
        Plan(chain(), [])
    with pytest.raises(PlanError, match="group 2 is empty"):
        Plan(chain(), [["a", "b", "c"], []])


def test_plan_of_invalid_app_is_refused():
    with pytest.raises(AppError, match="no stages"):
        Plan.coarse(App("nothing"))


def test_config_for_unknown_function_is_refused():
    with pytest.raises(PlanError, match=r"configuration given for \['a\+c'\].*not functions of this plan"):
        Plan.parse(chain(), "a+b,c", configs={"a+c": FunctionConfig()})


def test_unknown_function_lookup():
    plan = Plan.fine(chain())
    with pytest.raises(PlanError, match="plan 'fine' has no function 'z'"):
        plan["z"]


# -- function fields ----------------------------------------------------------------------------------------------


def test_fine_diamond_fields():
    plan = Plan.fine(diamond())
    assert names(plan)[0] == "s" and names(plan)[-1] == "m"
    assert set(names(plan)[1:3]) == {"l", "r"}
    s, m = plan["s"], plan["m"]
    assert (s.inputs, s.outputs, s.upstream) == ((INPUT,), ("s",), ())
    for side in ("l", "r"):
        f = plan[side]
        assert (f.inputs, f.outputs, f.upstream) == (("s",), (side,), ("s",))
    assert m.inputs == ("l", "r")  # in the order of m's after=
    assert m.outputs == ("m",)
    assert set(m.upstream) == {"l", "r"}


def test_grouped_diamond_fields():
    plan = Plan.parse(diamond(), "m,r,s+l")
    assert names(plan) == ["s+l", "r", "m"]
    sl, r, m = plan.functions
    assert sl.inputs == (INPUT,)
    assert sl.outputs == ("s", "l")  # s feeds r, l feeds m
    assert sl.upstream == ()
    assert r.inputs == ("s",) and r.outputs == ("r",) and r.upstream == ("s+l",)
    assert m.inputs == ("l", "r")
    assert set(m.upstream) == {"s+l", "r"}
    assert plan.function_of("l") is sl
    assert plan.function_of("m") is m


def test_inner_values_are_not_outputs():
    plan = Plan.parse(chain(), "a+b,c")
    ab, c = plan.functions
    assert ab.outputs == ("b",)  # a is consumed only inside the group
    assert c.inputs == ("b",) and c.upstream == ("a+b",)
    plan = Plan.parse(chain(), "a,b+c")
    assert plan["b+c"].inputs == ("a",)
    assert plan["b+c"].outputs == ("c",)  # the sink is always an output


def test_sink_and_inner_consumer_both_outputs():
    plan = Plan.parse(triangle(), "a,b+c")
    assert plan["a"].outputs == ("a",)
    bc = plan["b+c"]
    assert bc.inputs == ("a",)  # a feeds both b and c, listed once
    assert bc.outputs == ("c",)


def test_several_sources_all_take_the_input():
    app = App("two-sources")
    app.stage(lambda x: x, name="p")
    app.stage(lambda x: x, name="q")
    app.stage(lambda a, b: a + b, name="j", after=["p", "q"])
    plan = Plan.fine(app)
    assert plan["p"].inputs == plan["q"].inputs == (INPUT,)
    coarse = Plan.coarse(app)
    assert coarse.functions[0].inputs == (INPUT,)  # once, however many sources


def test_functions_are_in_topological_order():
    app = App("long")
    prev = app.stage(lambda x: x, name="s0")
    for i in range(1, 8):
        prev = app.stage(lambda x: x, name=f"s{i}", after=prev)
    groups = [["s6", "s7"], ["s3"], ["s0", "s1", "s2"], ["s4", "s5"]]
    plan = Plan(app, groups)
    assert names(plan) == ["s0+s1+s2", "s3", "s4+s5", "s6+s7"]
    seen: set[str] = set()
    for f in plan.functions:
        assert set(f.upstream) <= seen
        seen.add(f.name)


def test_combined_resources():
    app = chain()
    coarse = Plan.coarse(app).functions[0]
    assert coarse.resources == Resources.combine([s.resources for s in app.stages.values()])
    assert coarse.resources == Resources(vcpu=2.0, memory_mb=600, gpu=0.5, gpu_memory_mb=1500, max_concurrency=2)
    fine = Plan.fine(app)
    for f in fine.functions:
        assert f.resources == app[f.name].resources
    ab = Plan.parse(app, "a+b,c")["a+b"]
    assert ab.resources == Resources(vcpu=2.0, memory_mb=300, gpu=0.25, gpu_memory_mb=1000, max_concurrency=4)


def test_config_resources_override_the_combination():
    override = Resources(vcpu=4.0, memory_mb=8192)
    plan = Plan.parse(chain(), "a+b,c", configs={"a+b": FunctionConfig(resources=override)})
    assert plan["a+b"].resources == override
    assert plan["c"].resources == chain()["c"].resources


def test_target_concurrency_default_and_explicit():
    plan = Plan.fine(chain())
    assert plan["a"].target_concurrency == pytest.approx(0.7 * 4)
    assert plan["b"].target_concurrency == pytest.approx(0.7 * 8)
    assert plan["c"].target_concurrency == 1.4
    coarse = Plan.coarse(chain()).functions[0]
    assert coarse.target_concurrency == pytest.approx(1.4)  # combined max_concurrency is 2
    one = App("one")
    one.stage(lambda x: x, name="only")
    assert Plan.fine(one)["only"].target_concurrency == pytest.approx(0.7)  # Knative: 0.7 of one request
    explicit = Plan.fine(chain(), default=FunctionConfig(target_concurrency=5.0))
    assert all(f.target_concurrency == 5.0 for f in explicit.functions)


# -- with_config --------------------------------------------------------------------------------------------------


def test_with_config_changes_one_function():
    plan = Plan.parse(chain(), "a+b,c")
    new = plan.with_config("a+b", max_instances=3, keep_alive_s=5.0)
    assert new is not plan
    assert new.label == plan.label
    assert names(new) == names(plan)
    assert new["a+b"].config.max_instances == 3
    assert new["a+b"].config.keep_alive_s == 5.0
    assert new["c"].config == FunctionConfig()
    assert plan["a+b"].config == FunctionConfig()  # the original is untouched
    assert new["a+b"].resources == plan["a+b"].resources


def test_with_config_changes_every_function():
    plan = Plan.fine(chain()).with_config(timeout_s=2.0)
    assert plan.label == "fine"
    assert all(f.config.timeout_s == 2.0 for f in plan.functions)
    again = plan.with_config("b", max_batch_size=8)
    assert again["b"].config.max_batch_size == 8 and again["b"].config.timeout_s == 2.0
    assert again["a"].config.max_batch_size == 1 and again["a"].config.timeout_s == 2.0


def test_with_config_resources():
    res = Resources(vcpu=3.0, memory_mb=1024)
    plan = Plan.coarse(chain()).with_config("a+b+c", resources=res)
    assert plan.functions[0].resources == res


def test_with_config_refuses_unknown_function_and_bad_values():
    plan = Plan.fine(chain())
    with pytest.raises(PlanError, match="plan 'fine' has no function 'a\\+b'"):
        plan.with_config("a+b", max_instances=2)
    with pytest.raises(SpecError, match="max_instances"):
        plan.with_config("a", max_instances=0)
    with pytest.raises(TypeError):
        plan.with_config("a", no_such_field=1)


# -- FunctionConfig -----------------------------------------------------------------------------------------------


def test_function_config_defaults_are_valid():
    cfg = FunctionConfig()
    assert cfg.resources is None
    assert (cfg.min_instances, cfg.max_instances) == (0, 8)
    assert cfg.target_concurrency is None
    assert cfg.max_batch_size == 1
    FunctionConfig(min_instances=3, max_instances=3, queue_limit=0, max_batch_wait_s=0.0)


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"min_instances": -1}, "min_instances"),
        ({"min_instances": 5, "max_instances": 4}, "min_instances"),
        ({"max_instances": 0}, "max_instances"),
        ({"keep_alive_s": 0}, "keep_alive_s"),
        ({"keep_alive_s": -1.0}, "keep_alive_s"),
        ({"surplus_idle_s": -1.0}, "surplus_idle_s"),
        ({"surplus_idle_s": float("inf")}, "surplus_idle_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"queue_limit": -1}, "queue_limit"),
        ({"target_concurrency": 0}, "target_concurrency"),
        ({"target_concurrency": -2.5}, "target_concurrency"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_wait_s": -0.001}, "max_batch_wait_s"),
    ],
)
def test_function_config_validation(kwargs, what):
    with pytest.raises(SpecError, match=what):
        FunctionConfig(**kwargs)


def test_function_of_unknown_stage_is_refused():
    with pytest.raises(PlanError, match="plan 'fine' has no stage 'z'"):
        Plan.fine(chain()).function_of("z")
