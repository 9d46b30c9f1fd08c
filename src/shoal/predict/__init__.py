"""Profiles (measured), and later the predictors of latency, SLO hit rate and cost. Imports ``app`` and ``policy``
of Shoal only."""

from shoal.predict.gpu_table import GPU_TABLE_SOURCE, ZOO_GPU_MODELS, read_gpu_table, table_model
from shoal.predict.profile import (
    SCHEMA,
    AppInfo,
    GpuPoint,
    HopPoint,
    Point,
    Profile,
    ProfileError,
    Settings,
    Spread,
    StageInfo,
)
from shoal.predict.profile_io import read_profile, validate_profile, write_profile

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
