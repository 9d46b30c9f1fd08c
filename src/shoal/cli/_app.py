"""The ``shoal`` Typer application that every command module registers on."""

from __future__ import annotations

import typer

__all__ = ["cli", "fail"]

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


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)
