"""The ``shoal`` command."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.app import AppError, FunctionConfig, Plan, PlanError, SpecError

cli = typer.Typer(
    help=(
        "Shoal: serverless ML inference with adaptive function granularity.\n\n"
        "An application is a DAG of stages (see examples/). A plan groups its stages into serverless functions: "
        "'fine' (one function per stage), 'coarse' (one for all), or groups such as 'decode+resize,model'. "
        "Start with:  shoal serve examples/image_pipeline.py --plan fine"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@cli.command()
def serve(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    plan: Annotated[str, typer.Option(help="fine | coarse | groups like 'a+b,c' (stages joined by +, groups by ,)")] = (
        "coarse"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    bind: Annotated[str, typer.Option("--host", help="Address to bind. Beyond 127.0.0.1 a token is required.")] = (
        "127.0.0.1"
    ),
    token: Annotated[
        str | None, typer.Option(help="Bearer token for /status and /metrics (made if bound wide).")
    ] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle instance stays warm.")] = 60.0,
    min_instances: Annotated[int, typer.Option(help="Warm instances kept per function, even when idle.")] = 0,
    max_instances: Annotated[int, typer.Option(help="Most instances per function.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds a function may run per request before 504.")] = 30.0,
    queue_limit: Annotated[int, typer.Option(help="Requests that may wait per function before 429.")] = 256,
    max_batch_size: Annotated[
        int, typer.Option(help="Dynamic batching: most requests per call of a batch=True stage (1: off).")
    ] = 1,
    max_batch_wait_ms: Annotated[
        float, typer.Option(help="Dynamic batching: most time a request waits for its batch to fill.")
    ] = 0.0,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, in MiB, before 413.")] = 64.0,
    cpu_overcommit: Annotated[
        float, typer.Option(help="Scale out only while allocated vCPU <= cores x this (first instances always start).")
    ] = 1.0,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "warning",
) -> None:
    """Serve an application over HTTP: POST /apps/APP/invoke, GET /status, GET /metrics.

    \b
    Example:
      shoal serve examples/image_pipeline.py --plan fine --port 8000
      python -c "import numpy as np; np.save('img.npy', np.zeros((64, 64, 3), np.uint8))"
      curl -s --data-binary @img.npy -H 'content-type: application/x-npy' localhost:8000/apps/image/invoke
      shoal status
    """
    from shoal.app.loader import load_app
    from shoal.runtime.host import HostConfig
    from shoal.runtime.server import serve as run_server

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        the_app = load_app(app)
        default = FunctionConfig(
            min_instances=min_instances,
            max_instances=max_instances,
            keep_alive_s=keep_alive,
            timeout_s=timeout,
            queue_limit=queue_limit,
            max_batch_size=max_batch_size,
            max_batch_wait_s=max_batch_wait_ms / 1e3,
        )
        the_plan = Plan.parse(the_app, plan, default=default)
    except (AppError, PlanError, SpecError) as e:
        _fail(str(e))
    typer.secho(
        f"serving {the_app.name!r} under plan {the_plan.label!r} "
        f"({len(the_plan.functions)} functions) on http://{bind}:{port}",
        err=True,
    )
    if not max_body_mb > 0:
        _fail(f"--max-body-mb must be positive, got {max_body_mb:g}")
    config = HostConfig(max_body_bytes=int(max_body_mb * (1 << 20)), cpu_overcommit=cpu_overcommit)
    run_server([(the_app, the_plan)], bind=bind, port=port, token=token, config=config, log_level=log_level)


@cli.command()
def status(
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(help="Bearer token, if the server was bound beyond localhost.")] = None,
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Show functions, instances, queues and costs of a running server."""
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        doc = httpx.get(f"{url}/status", headers=headers, timeout=10).raise_for_status().json()
    except httpx.HTTPError as e:
        _fail(f"cannot read {url}/status: {e}. Is `shoal serve` running there?")
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    from shoal.report import print_status

    print_status(doc)


@cli.command()
def invoke(
    app: Annotated[str, typer.Argument(help="Application name, as deployed.")],
    data: Annotated[str, typer.Option(help="JSON input, or @FILE.npy / @FILE.json.")] = "null",
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
) -> None:
    """Send one request and print the reply with its timing breakdown."""
    import httpx

    if data.startswith("@"):
        path = Path(data[1:])
        ctype = "application/x-npy" if path.suffix == ".npy" else "application/json"
        body = path.read_bytes()
    else:
        ctype, body = "application/json", data.encode()
    try:
        r = httpx.post(f"{url}/apps/{app}/invoke", content=body, headers={"content-type": ctype}, timeout=60)
    except httpx.HTTPError as e:
        _fail(f"cannot reach {url}: {e}. Is `shoal serve` running there?")
    typer.echo(json.dumps(r.json(), indent=2))
    if r.status_code != 200:
        raise typer.Exit(1)


@cli.command()
def demo(
    seconds: Annotated[float, typer.Option(help="Seconds of load per plan.")] = 8.0,
    rate: Annotated[float, typer.Option(help="Offered load, requests per second (open loop, Poisson).")] = 40.0,
) -> None:
    """Serve the example image pipeline under the fine and the coarse plan, drive load, and compare."""
    from shoal.demo import run_demo

    run_demo(seconds=seconds, rate=rate)


@cli.command()
def profile(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    plan: Annotated[
        list[str] | None,
        typer.Option(help="Plan whose functions to measure besides the stages; repeatable. Default: fine, coarse."),
    ] = None,
    vcpus: Annotated[str, typer.Option(help="vCPU shares to measure at, comma-separated.")] = "1,2",
    batch_sizes: Annotated[str, typer.Option(help="Batch sizes for batch=True stages, comma-separated.")] = "1,2,4,8",
    input_sizes: Annotated[str, typer.Option(help="Input sizes, comma-separated.")] = "small,medium,large",
    repeats: Annotated[int, typer.Option(help="Measured requests per point (after the warm-up).")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up requests per point, not measured.")] = 2,
    quick: Annotated[bool, typer.Option(help="A quick look: 3 repeats, batch sizes 1 and 4, the first vCPU share.")] = (
        False
    ),
    hops: Annotated[bool, typer.Option(help="Measure the data hop cost against bytes.")] = True,
    gpu_table: Annotated[
        Path | None, typer.Option(help="GPU latency table (default: ../shared/gpu-profiles/rapp_v100_latency.csv).")
    ] = None,
    gpu_model: Annotated[
        list[str] | None, typer.Option(help="STAGE=MODEL: the GPU table's model for a stage; repeatable.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the profile (default: profiles/APP.json).")] = None,
    output: Annotated[str, typer.Option(help="table | json (json prints the profile on stdout, for scripts)")] = (
        "table"
    ),
) -> None:
    """Measure an application on this machine and write its profile (JSON, schema shoal.profile/1).

    Per stage and per function of each --plan: latency (median, p10, p90, CV) by vCPU share, batch size, input size.

    Also model load time, peak memory, output bytes, the data hop cost by bytes, and GPU rows from a measured table.

    Inputs: the app file's profile_inputs(size), or shoal.zoo.inputs for the examples. See docs/profiles.md.

    \b
    Example:
      shoal profile examples/image_pipeline.py --quick
      shoal profile examples/image_classification.py:resnet18 --gpu-model backbone=resnet18
    """
    import dataclasses
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shoal.predict import ProfileError, write_profile
    from shoal.report import make_console, render_profile
    from shoal.runtime.profiler import (
        HOP_BYTES,
        ProfileOptions,
        ProfilerError,
        default_gpu_table,
        load_target,
        profile_app,
    )

    def numbers(text: str, kind: type, flag: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(p) for p in text.split(",") if p.strip())
        except ValueError:
            _fail(f"{flag} takes comma-separated numbers, got {text!r}")
            raise

    if output not in ("table", "json"):
        _fail(f"--output must be table or json, got {output!r}")
    models = {}
    for m in gpu_model or []:
        stage, sep, model = (p.strip() for p in m.partition("="))
        if not (stage and sep and model):
            _fail(f"--gpu-model takes STAGE=MODEL, got {m!r}")
        models[stage] = model
    try:
        opts = ProfileOptions(
            repeats=repeats,
            warmup=warmup,
            vcpus=numbers(vcpus, float, "--vcpus"),
            batch_sizes=numbers(batch_sizes, int, "--batch-sizes"),
            input_sizes=tuple(s.strip() for s in input_sizes.split(",") if s.strip()),
            plans=tuple(plan or ("fine", "coarse")),
            hop_bytes=HOP_BYTES if hops else (),
            gpu_table=gpu_table or default_gpu_table(),
        )
        opts = opts.quick() if quick else opts
        cores = len(os.sched_getaffinity(0))
        if any(v > cores for v in opts.vcpus):
            typer.secho(f"note: skipping vCPU shares above the {cores} cores this process may use", err=True)
            opts = dataclasses.replace(opts, vcpus=tuple(v for v in opts.vcpus if v <= cores) or (1.0,))
        if opts.gpu_table is not None and not opts.gpu_table.is_file():
            _fail(f"no such GPU table: {str(opts.gpu_table)!r}")
        target = load_target(app, models)
    except (AppError, PlanError, SpecError, ProfilerError, ProfileError) as e:
        _fail(str(e))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Redrawn between points only: a refresh thread would take the interpreter from the measuring loop mid-request.
    bar = Progress(*columns, console=Console(stderr=True), transient=True, auto_refresh=False)
    task = bar.add_task("starting", total=None)

    def on_point(done: int, total: int, label: str) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, description=label, refresh=True)

    try:
        result = profile_app(
            target.app,
            target.inputs,
            opts,
            gpu_models=target.gpu_models,
            source=app,
            inputs_source=target.inputs_source,
            on_point=on_point,
        )
        bar.update(task, completed=bar.tasks[0].total or 0, description="done")
    except (AppError, PlanError, SpecError, ProfilerError, ProfileError) as e:
        bar.stop()
        _fail(str(e))
    finally:
        bar.stop()
    path = write_profile(result, out or Path("profiles") / f"{target.app.name}.json")
    if output == "json":
        typer.echo(result.dumps(), nl=False)
        return
    console = make_console()
    render_profile(result, console)
    console.print(f"wrote {path}")


@cli.command()
def sim(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    trace: Annotated[
        str,
        typer.Option(
            help="A trace CSV (Azure Functions 2019/2021, Azure LLM 2023) or poisson:RATE:SECONDS, "
            "mmpp:LOW:HIGH:SECONDS, diurnal:MEAN:SECONDS, ramp:START:END:SECONDS."
        ),
    ],
    plan: Annotated[str, typer.Option(help="fine | coarse | groups like 'a+b,c'")] = "coarse",
    cluster: Annotated[Path | None, typer.Option(help="Cluster TOML ([[nodes]] count, cpus, memory_gb, gpus ...).")] = (
        None
    ),
    stages: Annotated[
        Path | None, typer.Option(help="Stage-time TOML ([stages.NAME] kind, mean_ms, cv, model ...).")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="A `shoal profile` JSON: stage times, cold start and dispatch from it.")
    ] = None,
    functions: Annotated[int, typer.Option(help="Trace functions to sample; each drives its own copy of the app.")] = 1,
    rate_scale: Annotated[float, typer.Option(help="Multiply the arrival rate (thinning or superposition).")] = 1.0,
    compress: Annotated[float, typer.Option(help="Divide trace time by this (2: twice as fast).")] = 1.0,
    minutes: Annotated[
        float | None, typer.Option(help="Simulate only the first minutes of the (scaled) trace.")
    ] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle instance stays warm.")] = 60.0,
    max_instances: Annotated[int, typer.Option(help="Most instances per function.")] = 8,
    tick: Annotated[float, typer.Option(help="Autoscaler tick, seconds (the runtime's is 0.1).")] = 0.1,
    gpu_table: Annotated[Path | None, typer.Option(help="GPU latency table (default: ../shared/gpu-profiles).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for summary.json and the PNG plots.")] = Path("sim-report"),
    plots: Annotated[bool, typer.Option(help="Write PNG plots (matplotlib).")] = True,
    output: Annotated[str, typer.Option(help="text | json")] = "text",
) -> None:
    """Simulate an application under a plan and a load on a cluster, with Shoal's own policies (docs/simulator.md)."""
    import numpy as np

    from shoal.app.loader import load_app
    from shoal.sim import ClusterSpec, Deployment, GpuTable, SimConfig, Simulator, read_stage_models
    from shoal.sim.calibrate import read_calibration
    from shoal.sim.cluster import ClusterError
    from shoal.sim.gpu import GpuTableError
    from shoal.sim.model import ModelError
    from shoal.sim.report import report_doc, write_report
    from shoal.workload.source import load as load_trace
    from shoal.workload.traces import TraceError, sample_functions

    try:
        application = load_app(app)
        cfg = FunctionConfig(keep_alive_s=keep_alive, max_instances=max_instances)
        the_plan = Plan.parse(application, plan, default=cfg)
        spec = ClusterSpec.from_toml(cluster) if cluster else ClusterSpec.uniform(4)
        models, shares = read_stage_models(stages) if stages else ({}, {})
        cal = read_calibration(profile) if profile else None
        models = {**cal.stages, **models} if cal else models  # a --stages entry wins over the profile's
        t = load_trace(trace, seed=seed)
        if functions != len(t.functions) or functions > 1:
            t = sample_functions(t, functions, seed=seed)
        t = t.compressed(compress) if compress != 1.0 else t
        t = t.rate_scaled(rate_scale, seed=seed) if rate_scale != 1.0 else t
        until = min(t.span_s, minutes * 60) if minutes else t.span_s
        t = t.window(0.0, until)
        needs_gpu = any(m.kind == "gpu" for m in models.values())
        table = GpuTable.load(gpu_table) if needs_gpu or gpu_table else None
        deps = [
            Deployment(application, the_plan, models, shares, name=f"{application.name}#{i}" if functions > 1 else None)
            for i in range(functions)
        ]
        sample_s = max(tick, until / 400)  # about 400 points on each time plot
        timing = {"cold_start_s": cal.cold_start_s, "dispatch_s": cal.dispatch_s} if cal else {}
        config = SimConfig(tick_s=tick, seed=seed, sample_s=sample_s, **timing)
        simulator = Simulator(spec, deps, config, gpu_table=table)
        result = simulator.run(t.times, np.asarray(t.func), until=until)
    except (AppError, PlanError, SpecError, ClusterError, GpuTableError, ModelError, TraceError, ValueError) as e:
        _fail(str(e))
    meta = {"app": app, "plan": the_plan.label, "trace": trace, "functions": functions, "tick_s": tick}
    if profile:
        meta["profile"] = str(profile)
    if not models:
        meta["note"] = "no --stages file: every stage takes 10 ms of CPU"
    written = write_report(result, out, meta) if plots else []
    doc = report_doc(result, meta)
    if output == "json":
        doc["files"] = [str(p) for p in written]
        typer.echo(json.dumps(doc))
        return
    s = doc["summary"]
    lat = s["latency_ms"] or {}
    typer.echo(f"{application.name} under plan {the_plan.label}: {s['requests_finished']:,} requests finished")
    if lat:
        typer.echo(f"  latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; SLO hit rate {s['slo_hit_rate']:.3f}")
    typer.echo(f"  user bill USD {s['user_bill']['usd']:.4f}, resource cost USD {s['resource_cost']['usd']:.4f}")
    typer.echo(f"  cold starts {s['cold_starts']}, simulated {s['simulated_s']:.0f} s in {s['wall_s']:.2f} s")
    for p in written:
        typer.echo(f"  wrote {p}")


@cli.command()
def train(
    algorithm: Annotated[str, typer.Argument(help="kmeans | logreg")],
    data: Annotated[
        str, typer.Option(help="FILE.npy | FILE.csv | FILE.parquet, or synthetic:ROWSxCOLS (e.g. synthetic:20000x8).")
    ] = "synthetic:20000x8",
    labels: Annotated[str | None, typer.Option(help="logreg: labels file (default: the data's last column).")] = None,
    k: Annotated[int, typer.Option(help="kmeans: number of clusters.")] = 8,
    workers: Annotated[int, typer.Option(help="W: workers (serverless functions), each with a shard of the data.")] = 4,
    cores: Annotated[int, typer.Option(help="C: cores per worker, used by threads inside the function.")] = 1,
    rounds: Annotated[int, typer.Option(help="Synchronised rounds (iterations).")] = 20,
    store: Annotated[str, typer.Option(help="local (thread workers) | redis")] = "redis",
    redis_url: Annotated[str | None, typer.Option(help="Redis URL; default: a private redis-server.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="local (Shoal functions) | threads | lithops | ray; default by --store.")
    ] = None,
    sync: Annotated[str, typer.Option(help="bsp | ssp (bounded staleness) | asp (none)")] = "bsp",
    staleness: Annotated[int, typer.Option(help="ssp: rounds a worker may run ahead of the slowest.")] = 2,
    significance: Annotated[
        float, typer.Option(help="ssp/asp: publish updates only when they move the model by more (MLLess); 0: off.")
    ] = 0.0,
    comm: Annotated[str, typer.Option(help="bsp: allreduce | scatterreduce | ps (parameter server)")] = "allreduce",
    batch_size: Annotated[int, typer.Option(help="Rows per worker per round; 0: the whole shard.")] = 0,
    lr: Annotated[float, typer.Option(help="logreg: learning rate.")] = 0.5,
    alpha: Annotated[float, typer.Option(help="logreg: L2 penalty.")] = 1e-4,
    init: Annotated[str, typer.Option(help="kmeans: k-means++ | random")] = "k-means++",
    seed: Annotated[int, typer.Option(help="Seed of the data generator, the init and the batches.")] = 0,
    autotune: Annotated[
        bool, typer.Option(help="bsp: MLLess scale-in auto-tuner: remove workers when progress per $ falls.")
    ] = False,
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Train k-means or logistic regression with serverless workers that share state through a store."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shoal.report import make_console
    from shoal.train import train as run_training
    from shoal.train.report import read_data, render_result
    from shoal.train.store import StoreError

    if algorithm not in ("kmeans", "logreg"):
        _fail(f"unknown algorithm {algorithm!r}: use kmeans or logreg")
    try:
        X, y = read_data(algorithm, data, labels, k=k, seed=seed)
    except (OSError, ValueError) as e:
        _fail(str(e))
    params: dict[str, Any] = {"batch_size": batch_size}
    params |= {"k": k, "init": init} if algorithm == "kmeans" else {"lr": lr, "alpha": alpha}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)  # fmt: skip
    task = bar.add_task("starting workers", total=rounds)

    def on_round(r: int, loss: float) -> None:
        if not bar.live.is_started:
            bar.start()  # only now: the local back end forks its zygote before this refresh thread exists
        if output != "json":
            bar.console.print(f"round {r + 1:>4}  loss {loss:.6g}")
        bar.update(task, completed=r + 1, description=f"loss {loss:.6g}")

    try:
        result = run_training(
            algorithm, X, y, workers=workers, cores=cores, rounds=rounds, store=store, redis_url=redis_url,
            backend=backend, sync=sync, staleness=staleness, significance=significance, comm=comm, seed=seed,
            on_round=on_round, autotune=autotune, **params,
        )  # fmt: skip
    except (ValueError, StoreError) as e:
        bar.stop()
        _fail(str(e))
    finally:
        bar.stop()
    if output == "json":
        typer.echo(json.dumps(result.to_dict()))
        return
    render_result(result, make_console())


def main(argv: list[str] | None = None) -> Any:
    return cli(args=argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
