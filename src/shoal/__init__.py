"""Shoal: serverless machine learning with adaptive function granularity.

The public surface is small on purpose: describe an application (:class:`App`, its stages and :class:`SLO`), choose
a granularity (:class:`Plan`), and serve it (:func:`local` in Python, ``shoal serve`` over HTTP).
"""

from shoal.app import (
    SLO,
    App,
    AppError,
    ArraySpec,
    FunctionConfig,
    InputError,
    Plan,
    PlanError,
    Resources,
    SpecError,
    Stage,
)

__version__ = "0.1.0"

__all__ = [
    "SLO",
    "App",
    "AppError",
    "ArraySpec",
    "FunctionConfig",
    "InputError",
    "Plan",
    "PlanError",
    "Resources",
    "SpecError",
    "Stage",
    "__version__",
    "local",
]


def __getattr__(name: str):
    if name == "local":
        from shoal.runtime.local import local

        return local
    raise AttributeError(f"module 'shoal' has no attribute {name!r}")
