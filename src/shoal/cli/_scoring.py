"""Score functions for the planner, from what a user has on disk: shared by ``shoal plan`` and ``shoal serve
--adaptive``/``--adaptive-profile``, so that the plan a user weighs offline is scored as the live loop scores it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shoal.cli._app import fail as _fail

__all__ = ["analytical_score", "parse_input_mix"]


def analytical_score(
    profile: Path,
    slo: Any,
    learned: Path | None = None,
    input_mix: dict[str, float] | None = None,
    app_name: str | None = None,
    mix_option: str = "--input-mix",
) -> Any:
    """The analytical predictor over a profile (corrected by a learned predictor's trees if ``learned``), as the
    planner's score function. With ``app_name``, the profile must be of that application."""
    from shoal.predict.analytical import AnalyticalPredictor
    from shoal.predict.app_learned import LearnedPredictor
    from shoal.predict.app_model import Load, PredictError
    from shoal.predict.planner import profile_score
    from shoal.predict.profile import ProfileError
    from shoal.predict.profile_io import read_profile

    try:
        measured = read_profile(profile)
    except (ProfileError, OSError) as e:
        _fail(f"cannot read profile {profile}: {e}")
    if app_name is not None and measured.app.name != app_name:
        _fail(f"{profile} is a profile of {measured.app.name!r}, not of {app_name!r}: profile it with `shoal profile`")
    if input_mix is not None:
        try:
            Load(1.0, 1.0, input_mix).mix(measured.settings.input_sizes)
        except PredictError as e:
            _fail(f"{mix_option}: {e}")
    predictor: Any = AnalyticalPredictor(samples=5000)
    if learned is not None:
        try:
            predictor = LearnedPredictor.load(learned)
        except PredictError as e:
            _fail(str(e))
        fitted_on = predictor.meta.get("apps", [])
        if measured.app.name not in fitted_on:
            typer.secho(
                f"note: {learned} was fitted on runs of {', '.join(fitted_on) or 'other apps'}, not "
                f"{measured.app.name}: its correction is that of other applications",
                err=True,
            )

    return profile_score(predictor, measured, slo, input_mix)


def parse_input_mix(text: str | None, option: str = "--input-mix") -> dict[str, float] | None:
    """``small=1,large=3`` as fractions per input size (None: the predictor's default, the middle size); ``option``
    names the flag in the error."""
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        size, eq, value = part.strip().partition("=")
        try:
            out[size.strip()] = float(value)
        except ValueError:
            out[size.strip()] = -1.0
        if not eq or not size.strip() or not out[size.strip()] >= 0:
            _fail(f"{option} takes SIZE=FRACTION pairs, e.g. small=1,medium=1,large=1; got {text!r}")
    return out
