"""The application model: building stage DAGs, specs (SLO, Resources, ArraySpec) and finding apps in files."""

from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest

from shoal.app import INPUT, SLO, App, AppError, ArraySpec, InputError, Resources, SpecError, Stage, StageFailed
from shoal.app.loader import load_app

# -- building apps ------------------------------------------------------------------------------------------------


def test_decorator_returns_a_stage_and_single_stage_app_runs():
    app = App("double")

    @app.stage()
    def twice(x):
        return 2 * x

    assert isinstance(twice, Stage)
    assert twice.name == "twice"
    assert twice.after == ()
    assert twice(4) == 8  # a Stage is still callable
    assert app.stages == {"twice": twice}
    assert app["twice"] is twice
    assert app.sources == ["twice"]
    assert app.sink == "twice"
    assert app.run(21) == 42


def test_decorator_without_parentheses_and_explicit_name():
    app = App("names")

    @app.stage
    def first(x):
        return x + 1

    @app.stage(name="second", after="first")
    def whatever(x):
        return x * 10

    assert isinstance(first, Stage)
    assert whatever.name == "second"
    assert list(app.stages) == ["first", "second"]
    assert app.run(1) == 20


def test_after_by_name_or_by_stage_gives_the_same_chain():
    def build(by_stage: bool) -> App:
        app = App("chain")

        @app.stage()
        def a(x):
            return x + 1

        @app.stage(after=a if by_stage else "a")
        def b(x):
            return x * 3

        @app.stage(after=[b] if by_stage else ["b"])
        def c(x):
            return x - 2

        return app

    for by_stage in (True, False):
        app = build(by_stage)
        assert app["b"].after == ("a",)
        assert app["c"].after == ("b",)
        assert app.sources == ["a"]
        assert app.downstream("a") == ["b"]
        assert app.downstream("c") == []
        assert app.sink == "c"
        assert app.run(1) == (1 + 1) * 3 - 2


def test_fan_out_and_fan_in_pass_arguments_in_after_order():
    app = App("diamond")
    seen = []

    @app.stage()
    def src(x):
        return x

    @app.stage(after=src)
    def left(x):
        return ("L", x)

    @app.stage(after=src)
    def right(x):
        return ("R", x)

    @app.stage(after=[right, "left"])  # deliberately not the definition order
    def merge(*xs):
        seen.append(xs)
        return xs

    assert app.downstream("src") == ["left", "right"]
    assert merge.after == ("right", "left")
    assert app.run(7) == (("R", 7), ("L", 7))
    assert seen == [(("R", 7), ("L", 7))]


def test_fan_in_order_matters_numerically():
    app = App("order")

    @app.stage()
    def a(x):
        return x + 1.0

    @app.stage(after=a)
    def b(x):
        return x * 2.0

    @app.stage(after=[b, a])
    def c(p, q):
        return p - q

    x = np.arange(4.0)
    np.testing.assert_array_equal(app.run(x), (x + 1) * 2 - (x + 1))


def test_load_result_is_passed_as_first_argument():
    app = App("loaded")
    loads = []

    def load_model():
        loads.append(1)
        return {"scale": 5}

    @app.stage(load=load_model)
    def pre(model, x):
        return model["scale"] * x

    @app.stage()
    def other(x):
        return x + 100

    @app.stage(after=[pre, other], load=lambda: 1000)
    def post(offset, p, o):
        return offset + p + o

    assert pre.load is load_model
    assert app.run(2) == 1000 + 10 + 102
    assert loads == [1]  # load runs once per run of the whole app in-process


def test_stage_resources_and_batch_flag():
    app = App("res")

    @app.stage(vcpu=2.0, memory_mb=2048, gpu=0.25, gpu_memory_mb=4000, max_concurrency=4, batch=True)
    def heavy(x):
        return x

    assert heavy.resources == Resources(2.0, 2048, 0.25, 4000, 4)
    assert heavy.batch is True


def test_bad_resources_are_refused_at_decoration():
    app = App("bad")
    with pytest.raises(SpecError, match="vcpu"):

        @app.stage(vcpu=0)
        def s(x):
            return x

    assert app.stages == {}


def test_add_stage_built_by_hand():
    app = App("manual")
    a = app.add(Stage("a", lambda x: x + 1))
    b = app.add(Stage("b", lambda x: x * 2, after=("a",)))
    assert a.name == "a" and b.after == ("a",)
    assert app.run(3) == 8


def test_app_run_wraps_stage_errors_naming_the_stage():
    app = App("boom")

    @app.stage()
    def ok(x):
        return x

    @app.stage(after=ok)
    def bad(x):
        raise RuntimeError("kaput")

    with pytest.raises(StageFailed, match=r"'bad'.*RuntimeError.*kaput") as info:
        app.run(1)
    assert info.value.stage == "bad"
    assert isinstance(info.value.error, RuntimeError)


def test_stages_property_is_a_copy():
    app = App("copy")

    @app.stage()
    def a(x):
        return x

    app.stages.clear()
    assert list(app.stages) == ["a"]


# -- errors -------------------------------------------------------------------------------------------------------


def test_duplicate_stage_is_refused():
    app = App("dup")

    @app.stage()
    def a(x):
        return x

    with pytest.raises(AppError, match="stage 'a' is defined twice in app 'dup'"):

        @app.stage(name="a")
        def again(x):
            return x

    assert app["a"] is a


def test_unknown_upstream_is_refused():
    app = App("unknown")

    @app.stage()
    def a(x):
        return x

    with pytest.raises(AppError, match=r"stage 'b' comes after 'nope', which is not .* a stage of 'unknown'"):

        @app.stage(after=["a", "nope"])
        def b(x, y):
            return x

    assert list(app.stages) == ["a"]


def test_upstream_defined_later_is_refused():
    app = App("later")
    with pytest.raises(AppError, match="comes after 'b'"):
        app.add(Stage("a", lambda x: x, after=("b",)))


def test_stage_after_itself_is_refused():
    app = App("self")
    with pytest.raises(AppError, match="stage 'a' comes after 'a'"):
        app.add(Stage("a", lambda x: x, after=("a",)))


def test_duplicate_upstream_is_refused():
    app = App("dupup")

    @app.stage()
    def a(x):
        return x

    with pytest.raises(AppError, match="stage 'b' lists an upstream stage twice"):

        @app.stage(after=[a, "a"])
        def b(x, y):
            return x


def test_after_of_wrong_type_is_refused():
    app = App("types")
    with pytest.raises(SpecError, match="after= takes stage names or stages"):

        @app.stage(after=[42])
        def b(x):
            return x


def test_no_stages_is_refused():
    app = App("empty")
    with pytest.raises(AppError, match="app 'empty' has no stages"):
        app.validate()
    with pytest.raises(AppError, match="no stages"):
        _ = app.sink
    with pytest.raises(AppError, match="no stages"):
        app.run(1)


def test_two_sinks_are_refused_naming_them():
    app = App("forked")

    @app.stage()
    def a(x):
        return x

    @app.stage(after=a)
    def b(x):
        return x

    @app.stage(after=a)
    def c(x):
        return x

    with pytest.raises(AppError, match="exactly one final stage, found 2: b, c"):
        app.validate()
    with pytest.raises(AppError, match="found 2"):
        app.run(1)


def test_two_independent_sources_are_two_sinks():
    app = App("apart")
    app.add(Stage("a", lambda x: x))
    app.add(Stage("b", lambda x: x))
    with pytest.raises(AppError, match="found 2: a, b"):
        app.validate()


@pytest.mark.parametrize("name", ["", "has space", "dot.ted", "slash/ed", "plus+", "--"])
def test_bad_app_names_are_refused(name):
    with pytest.raises(AppError, match="application name"):
        App(name)


@pytest.mark.parametrize("name", ["ok", "with-dash", "with_underscore", "v2"])
def test_good_app_names(name):
    assert App(name).name == name


@pytest.mark.parametrize("name", [INPUT, "a+b", "a,b", "", " a", "a\t", "+"])
def test_bad_stage_names_are_refused(name):
    app = App("names")
    with pytest.raises(AppError, match="stage name"):
        app.add(Stage(name, lambda x: x))
    assert app.stages == {}


def test_unknown_stage_lookup_names_the_stages():
    app = App("lookup")
    app.add(Stage("a", lambda x: x))
    app.add(Stage("b", lambda x: x, after=("a",)))
    with pytest.raises(AppError, match="app 'lookup' has no stage 'z'; it has a, b"):
        app["z"]


# -- SLO ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pct", "latency"),
    [
        ("p99:200ms", 99.0, 0.2),
        ("p95<=1.5s", 95.0, 1.5),
        ("p50:1s", 50.0, 1.0),
        ("p99.9:50ms", 99.9, 0.05),
        ("  p90 : 300 ms ", 90.0, 0.3),
        ("p99<250ms", 99.0, 0.25),
    ],
)
def test_slo_parse(text, pct, latency):
    slo = SLO.parse(text)
    assert slo.percentile == pct
    assert slo.latency_s == pytest.approx(latency)


@pytest.mark.parametrize(
    "text", ["", "fast", "99:200ms", "p99:200", "p99:200us", "p99:-5ms", "p99 200ms", "pxx:1s", "p99:1.5.2s"]
)
def test_slo_parse_refuses_malformed_text(text):
    with pytest.raises(SpecError, match="cannot read SLO"):
        SLO.parse(text)


@pytest.mark.parametrize(
    ("text", "what"), [("p0:200ms", "percentile"), ("p100:1s", "percentile"), ("p99:0ms", "bound")]
)
def test_slo_parse_refuses_out_of_range_values(text, what):
    with pytest.raises(SpecError, match=what):
        SLO.parse(text)


def test_slo_defaults_str_and_direct_validation():
    assert SLO() == SLO(99.0, 0.2)
    assert str(SLO()) == "p99:200ms"
    assert SLO.parse(str(SLO(95, 1.5))) == SLO(95, 1.5)
    for bad in (math.inf, math.nan, -1.0, 0.0):
        with pytest.raises(SpecError, match="latency"):
            SLO(99, bad)
    with pytest.raises(SpecError, match="percentile"):
        SLO(-1, 0.1)


def test_app_slo_from_text_object_or_default():
    assert App("a", slo="p95<=1.5s").slo == SLO(95.0, 1.5)
    assert App("b", slo=SLO(90, 0.1)).slo == SLO(90, 0.1)
    assert App("c").slo == SLO()
    with pytest.raises(SpecError):
        App("d", slo="soon")


# -- Resources ----------------------------------------------------------------------------------------------------


def test_resources_defaults_are_valid():
    r = Resources()
    assert (r.vcpu, r.memory_mb, r.gpu, r.gpu_memory_mb, r.max_concurrency) == (1.0, 512, 0.0, 0, 1)
    Resources(vcpu=0.1, memory_mb=1, gpu=1.0, gpu_memory_mb=0, max_concurrency=64)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vcpu": 0}, "vcpu"),
        ({"vcpu": -1}, "vcpu"),
        ({"vcpu": math.inf}, "vcpu"),
        ({"vcpu": math.nan}, "vcpu"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"memory_mb": -512}, "memory_mb"),
        ({"gpu": -0.1}, "gpu"),
        ({"gpu": 1.5}, "gpu"),
        ({"gpu": math.nan}, "gpu"),
        ({"gpu_memory_mb": -1}, "gpu_memory_mb"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_resources_validation_names_the_field(kwargs, field):
    with pytest.raises(SpecError, match=field):
        Resources(**kwargs)


def test_resources_combine_semantics():
    a = Resources(vcpu=0.5, memory_mb=1000, gpu=0.25, gpu_memory_mb=3000, max_concurrency=8)
    b = Resources(vcpu=2.0, memory_mb=500, gpu=0.1, gpu_memory_mb=1000, max_concurrency=2)
    c = Resources(vcpu=1.0, memory_mb=24, gpu=0.0, gpu_memory_mb=0, max_concurrency=4)
    combined = Resources.combine([a, b, c])
    # Sequential stages: the largest CPU/GPU share, memory for all models at once, the least concurrency.
    assert combined == Resources(vcpu=2.0, memory_mb=1524, gpu=0.25, gpu_memory_mb=4000, max_concurrency=2)
    assert Resources.combine([a]) == a
    assert Resources.combine([c, b, a]) == combined  # order does not matter


def test_resources_combine_of_nothing_is_refused():
    with pytest.raises(SpecError, match="no stages"):
        Resources.combine([])


# -- ArraySpec ----------------------------------------------------------------------------------------------------


def test_array_spec_accepts_matching_arrays():
    spec = ArraySpec((None, 3, 224, 224), "float32")
    spec.check((1, 3, 224, 224), np.float32)
    spec.check((16, 3, 224, 224), "float32")
    spec.check(np.zeros((2, 3, 224, 224), np.float32).shape, np.zeros(1, np.float32).dtype)
    ArraySpec((4,), "int64").check((4,), np.int64)
    ArraySpec(()).check((), np.float32)


def test_array_spec_refuses_wrong_dtype():
    with pytest.raises(InputError, match="input dtype is float64, expected float32"):
        ArraySpec((None, 3)).check((2, 3), np.float64)


@pytest.mark.parametrize("shape", [(2, 4), (2, 3, 1), (3,), ()])
def test_array_spec_refuses_wrong_shape(shape):
    with pytest.raises(InputError, match=r"expected \(\*, 3\)"):
        ArraySpec((None, 3)).check(shape, np.float32)


def test_array_spec_error_names_the_shape():
    with pytest.raises(InputError, match=r"input shape is \(1, 2, 5\), expected \(1, 2, 4\)"):
        ArraySpec((1, 2, 4)).check((1, 2, 5), "float32")


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)
    assert issubclass(SpecError, ValueError)
    assert issubclass(AppError, ValueError)


# -- load_app -----------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_imports(monkeypatch):
    """load_app adds to sys.path and sys.modules; undo both after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


ONE_APP = """
from shoal.app import App

app = App("from-file")

@app.stage()
def inc(x):
    return x + 1
"""


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.usefixtures("clean_imports")
def test_load_app_finds_the_only_app(tmp_path):
    f = _write(tmp_path / "myapp.py", ONE_APP)
    app = load_app(str(f))
    assert isinstance(app, App)
    assert app.name == "from-file"
    assert app.run(1) == 2


@pytest.mark.usefixtures("clean_imports")
def test_load_app_by_variable(tmp_path):
    f = _write(
        tmp_path / "two.py",
        """
        from shoal.app import App

        first = App("first")
        second = App("second")

        @second.stage()
        def s(x):
            return x * 2
        """,
    )
    assert load_app(f"{f}:second").name == "second"
    assert load_app(f"{f}:first").name == "first"
    with pytest.raises(AppError, match="has no App named 'missing'"):
        load_app(f"{f}:missing")


@pytest.mark.usefixtures("clean_imports")
def test_load_app_variable_that_is_not_an_app(tmp_path):
    f = _write(tmp_path / "notapp.py", ONE_APP + "\nNOT_AN_APP = 3\n")
    with pytest.raises(AppError, match="has no App named 'NOT_AN_APP'"):
        load_app(f"{f}:NOT_AN_APP")


@pytest.mark.usefixtures("clean_imports")
def test_load_app_refuses_two_apps_without_a_name(tmp_path):
    f = _write(
        tmp_path / "pair.py",
        """
        from shoal.app import App

        a = App("alpha")
        b = App("beta")
        """,
    )
    with pytest.raises(AppError, match=r"defines 2 apps \(alpha, beta\); name one as .*pair\.py:VARIABLE"):
        load_app(str(f))


@pytest.mark.usefixtures("clean_imports")
def test_load_app_refuses_a_file_with_no_app(tmp_path):
    f = _write(tmp_path / "none.py", "X = 1\n")
    with pytest.raises(AppError, match=r"defines 0 apps \(none\)"):
        load_app(str(f))


def test_load_app_missing_file(tmp_path):
    missing = tmp_path / "nowhere.py"
    with pytest.raises(AppError, match=r"no such file: .*nowhere\.py"):
        load_app(str(missing))
    with pytest.raises(AppError, match="no such file"):
        load_app(f"{missing}:app")
    with pytest.raises(AppError, match="no such file"):
        load_app(str(tmp_path))  # a directory is not a file


@pytest.mark.usefixtures("clean_imports")
def test_load_app_refuses_a_non_python_file(tmp_path):
    f = tmp_path / "app.txt"
    f.write_text(ONE_APP)
    with pytest.raises(AppError, match="not a Python file"):
        load_app(str(f))


@pytest.mark.usefixtures("clean_imports")
def test_load_app_file_can_import_its_neighbours(tmp_path):
    _write(tmp_path / "shoal_test_neighbour_7f3a.py", "FACTOR = 7\n")
    f = _write(
        tmp_path / "withhelper.py",
        """
        from shoal.app import App
        from shoal_test_neighbour_7f3a import FACTOR

        app = App("helped")

        @app.stage()
        def scale(x):
            return FACTOR * x
        """,
    )
    assert load_app(str(f)).run(3) == 21
