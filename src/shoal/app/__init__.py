"""What users write: stages, the application DAG, resource specs and granularity plans. Imports nothing of Shoal."""

from shoal.app.execute import StageFailed, run_batch, run_stages
from shoal.app.graph import INPUT, App, AppError, Stage
from shoal.app.plan import Function, FunctionConfig, Plan, PlanError
from shoal.app.spec import SLO, ArraySpec, InputError, Resources, SpecError

__all__ = [
    "INPUT",
    "SLO",
    "App",
    "AppError",
    "ArraySpec",
    "Function",
    "FunctionConfig",
    "InputError",
    "Plan",
    "PlanError",
    "Resources",
    "SpecError",
    "Stage",
    "StageFailed",
    "run_batch",
    "run_stages",
]
