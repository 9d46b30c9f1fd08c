"""``shoal train``: serverless training jobs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shoal.cli._app import cli
from shoal.cli._app import fail as _fail


@cli.command()
def train(
    algorithm: Annotated[str, typer.Argument(help="kmeans | logreg")],
    data: Annotated[
        str, typer.Option(help="FILE.npy | FILE.csv | FILE.parquet, or synthetic:ROWSxCOLS (e.g. synthetic:20000x8).")
    ] = "synthetic:20000x8",
    labels: Annotated[str | None, typer.Option(help="logreg: labels file (default: the data's last column).")] = None,
    k: Annotated[int, typer.Option(help="kmeans: number of clusters.")] = 8,
    workers: Annotated[int, typer.Option(help="W: workers (serverless functions), each with a shard of the data.")] = 4,
    cores: Annotated[int, typer.Option(help="C: cores per worker, used inside the function (see --parallel).")] = 1,
    parallel: Annotated[
        str, typer.Option(help="threads | processes (C processes over a shared-memory shard): how C cores are used.")
    ] = "threads",
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
    lr: Annotated[float, typer.Option(help="logreg: learning rate (solver gd).")] = 0.5,
    solver: Annotated[str, typer.Option(help="logreg: gd (gradient descent) | lbfgs (full batch, bsp)")] = "gd",
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
    params |= {"k": k, "init": init} if algorithm == "kmeans" else {"lr": lr, "alpha": alpha, "solver": solver}
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
            backend=backend, parallel=parallel, sync=sync, staleness=staleness, significance=significance, comm=comm,
            seed=seed, on_round=on_round, autotune=autotune, **params,
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
