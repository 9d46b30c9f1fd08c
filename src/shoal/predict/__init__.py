"""Profiles (measured), and later the predictors of latency, SLO hit rate and cost. Imports ``app`` and ``policy``
of Shoal only."""

from shoal.predict.profile import (
    GPU_TABLE_SOURCE,
    SCHEMA,
    ZOO_GPU_MODELS,
    AppInfo,
    GpuPoint,
    HopPoint,
    Point,
    Profile,
    ProfileError,
    Settings,
    Spread,
    StageInfo,
    read_gpu_table,
    read_profile,
    table_model,
    validate_profile,
    write_profile,
)

__all__ = [
    "SCHEMA",
    "GPU_TABLE_SOURCE",
    "ZOO_GPU_MODELS",
    "ProfileError",
    "Profile",
    "Point",
    "Spread",
    "HopPoint",
    "GpuPoint",
    "AppInfo",
    "StageInfo",
    "Settings",
    "read_profile",
    "write_profile",
    "validate_profile",
    "read_gpu_table",
    "table_model",
]
