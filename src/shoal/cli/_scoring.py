"""Score functions for the planner, from what a user has on disk: shared by ``shoal plan`` and ``shoal serve
--adaptive``/``--adaptive-profile``, so that the plan a user weighs offline is scored as the live loop scores it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shoal.cli._app import fail as _fail

__all__ = ["analytical_score"]


def analytical_score(
    profile: Path,
    slo: Any,
    learned: Path | None = None,
    input_mix: dict[str, float] | None = None,
    app_name: str | None = None,
) -> Any:
    """The analytical predictor over a profile (corrected by a learned predictor's trees if ``learned``), as the
    planner's score function. With ``app_name``, the profile must be of that application."""
    from shoal.predict.analytical import AnalyticalPredictor
    from shoal.predict.app_learned import LearnedPredictor
    from shoal.predict.app_model import Load, PredictError
    from shoal.predict.planner import CannotPredict, Score
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
            _fail(f"--input-mix: {e}")
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

    def score(plan: Any, load: Any) -> Score:
        try:
            p = predictor.predict(measured, plan, Load(load.rate, load.scv, input_mix), slo)
        except PredictError as e:
            raise CannotPredict(str(e)) from None
        return Score(p.slo_hit_rate, p.cost_per_s, {"p99_ms": p.latency_s[99] * 1e3, "predictor": predictor.kind})

    return score
