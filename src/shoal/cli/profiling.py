"""``shoal profile``: measure an application on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.app import AppError, PlanError, SpecError
from shoal.cli._app import cli
from shoal.cli._app import fail as _fail


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
