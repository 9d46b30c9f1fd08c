"""``shoal predict``: fit GPU latency predictors on a measured table and evaluate them on another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._app import cli
from shoal.cli._app import fail as _fail

predict_cli = typer.Typer(
    help=(
        "GPU latency predictors (docs/predictors.md). Fit one on a table of columns model, batch, sm_percent, "
        "quota_percent, latency_ms (e.g. ../shared/gpu-profiles/rapp_v100_latency.csv, or your own measurements), "
        "then evaluate it on a table of models it has not seen."
    ),
    no_args_is_help=True,
)
cli.add_typer(predict_cli, name="predict")


def _parse_refs(text: str) -> list[tuple[int, int, int]]:
    out = []
    for part in text.split(","):
        bits = part.strip().split(":")
        try:
            b, s, q = (int(x) for x in bits)
        except ValueError:
            raise ValueError(
                f"--refs: cannot read {part!r}; write BATCH:SM:QUOTA points, e.g. 1:100:100,4:10:100"
            ) from None
        out.append((b, s, q))
    return out


@predict_cli.command()
def fit(
    table: Annotated[
        Path, typer.Option(help="GPU latency table (CSV: model, batch, sm_percent, quota_percent, latency_ms).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the fitted predictor (JSON).")],
    kind: Annotated[str, typer.Option(help="learned (gradient-boosted trees) | empirical (table interpolation)")] = (
        "learned"
    ),
    refs: Annotated[
        str | None,
        typer.Option(
            help="Reference points BATCH:SM:QUOTA a model is described by; the first at batch 1. "
            "Default: 1:100:100,4:100:100,4:10:100,1:100:20."
        ),
    ] = None,
    neighbours: Annotated[int, typer.Option(help="empirical: nearest measured models to interpolate over.")] = 3,
    seed: Annotated[int, typer.Option(help="learned: seed of the tree fitting.")] = 0,
) -> None:
    """Fit a GPU latency predictor on a table and save it as JSON (no pickle: the file is safe to share).

    \b
    Example:
      shoal predict fit --table ../shared/gpu-profiles/rapp_v100_latency.csv --out v100.json --kind learned
    """
    from shoal.predict.gpu_latency import DEFAULT_REFERENCES, EmpiricalGpuPredictor, save_predictor
    from shoal.predict.gpu_trees import LearnedGpuPredictor
    from shoal.predict.latency_table import LatencyTableError, read_latency_table

    if kind not in ("learned", "empirical"):
        _fail(f"--kind must be learned or empirical, got {kind!r}")
    try:
        points = _parse_refs(refs) if refs else list(DEFAULT_REFERENCES)
        t = read_latency_table(table)
        predictor = (
            LearnedGpuPredictor.fit(t, points, seed=seed)
            if kind == "learned"
            else EmpiricalGpuPredictor(t, points, neighbours)
        )
        save_predictor(predictor, out)
    except (LatencyTableError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"fitted an {kind} predictor on {len(t.models)} models ({len(t):,} rows) of {table}; wrote {out}")


@predict_cli.command("eval")
def evaluate_cmd(
    model: Annotated[Path, typer.Option(help="A predictor written by `shoal predict fit`.")],
    table: Annotated[
        Path, typer.Option(help="GPU latency table to score it on (each model's reference rows are its input).")
    ],
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Score a predictor on a table: MAPE overall and per model.

    Each model's reference rows are given to the predictor and not scored; every other row is. Score on models the
    predictor was not fitted on to learn how it does on new models.
    """
    from shoal.predict.gpu_eval import evaluate
    from shoal.predict.gpu_latency import load_predictor
    from shoal.predict.latency_table import LatencyTableError, read_latency_table

    if output not in ("table", "json"):
        _fail(f"--output must be table or json, got {output!r}")
    try:
        predictor = load_predictor(model)
        result = evaluate(predictor, read_latency_table(table))
    except (LatencyTableError, ValueError) as e:
        _fail(str(e))
    if output == "json":
        typer.echo(json.dumps({"model": str(model), "table": str(table), **result.to_dict()}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{result.kind} predictor {model.name} on {table.name}: absolute % error of latency")
    for col in ("model", "rows", "MAPE %", "median %", "p90 %"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in result.per_model:
        t.add_row(m.model, str(m.rows), f"{m.mape:.1f}", f"{m.median_ape:.1f}", f"{m.p90_ape:.1f}")
    t.add_section()
    t.add_row("all", str(result.rows), f"{result.mape:.1f}", f"{result.median_ape:.1f}", f"{result.p90_ape:.1f}")
    Console().print(t)
