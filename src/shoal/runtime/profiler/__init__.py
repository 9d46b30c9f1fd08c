"""``shoal profile``: measure an application's stages and functions on the embedded runtime.

Everything is measured on the real runtime (zygote, instance processes pinned to their cores, shared memory), one
instance at a time, with the instance at the vCPU share being measured:

- **A stage** runs alone: a one-stage application wraps it (same function, ``load`` and ``batch`` flag; a stage with
  several upstream stages gets their values as one list that the wrapper unpacks), and its inputs are the values
  its upstream stages produce when the whole application runs in this process on a sample input. A ``batch=True``
  stage is also measured with one request carrying B rows.
- **A function** of another plan (coarse by default) runs the same way, with all its stages in one instance; if one
  of them batches, B requests are sent at once and the runtime's dynamic batching runs them as one batch.
- Each point is warmed up, then repeated; the instance's cold start and model load time come from its start, its
  peak resident memory from ``/proc/PID/status`` (VmHWM, reset before each point).
- **Hops**: an echo chain of two stages, served fine and coarse, carries arrays of growing size; the difference of
  the medians is the cost of one function boundary.
- **GPU rows** come from a table measured elsewhere (there is no GPU here), for stages mapped to a table model.

The result is a :class:`shoal.predict.Profile` (schema ``shoal.profile/1``, see docs/profiles.md); it is printed by
:func:`shoal.report.render_profile`.

This package's public API is re-exported here; its modules, by idea: ``options`` (what to measure), ``targets`` (the
application, its inputs and GPU models), ``groups`` (a stage or function as a one-function application),
``machine`` (what is read of the machine), ``measure`` (points on the runtime), ``hops`` (the cost of a data hop) and
``sweep`` (:func:`profile_app`, all of it).
"""

from shoal.report import render_profile
from shoal.runtime.profiler.groups import group_app
from shoal.runtime.profiler.machine import data_bytes, machine_info, peak_rss_mb, reset_peak_rss
from shoal.runtime.profiler.options import HOP_BYTES, INPUT_SIZES, InputsFn, OnPoint, ProfileOptions, ProfilerError
from shoal.runtime.profiler.sweep import profile_app
from shoal.runtime.profiler.targets import Target, default_gpu_table, load_target, stage_gpu_models, zoo_inputs

__all__ = [
    "HOP_BYTES",
    "INPUT_SIZES",
    "InputsFn",
    "OnPoint",
    "ProfileOptions",
    "ProfilerError",
    "Target",
    "data_bytes",
    "default_gpu_table",
    "group_app",
    "load_target",
    "machine_info",
    "peak_rss_mb",
    "profile_app",
    "render_profile",
    "reset_peak_rss",
    "stage_gpu_models",
    "zoo_inputs",
]
