"""A discrete-event simulator that drives Shoal's own policies at cluster scale (docs/simulator.md).

The runtime and the simulator are two environments around the same pure policies (DESIGN.md, idea 3): the pools
here feed ``KpaAutoscaler``, ``instances_to_retire`` and ``decide_batch`` exactly as ``runtime/pool.py`` does, GPU
shares are placed by ``policy.gpu_placement``, and ``SimAdaptive`` runs the ``GranularityController``, all on a
virtual clock. GPU latency comes from the measured table in ``../shared/gpu-profiles/``.
"""

from shoal.sim.adaptive import SimAdaptive, SimSchedule
from shoal.sim.calibrate import Calibration, calibrate, read_calibration
from shoal.sim.cluster import Cluster, ClusterError, ClusterSpec, Network, NodeSpec
from shoal.sim.engine import SimConfig, Simulator
from shoal.sim.gpu import GpuDevice, GpuShare, GpuTable, GpuTableError
from shoal.sim.kernel import Kernel
from shoal.sim.model import Deployment, ModelError, StageModel, read_stage_models
from shoal.sim.result import SimResult

__all__ = [
    "Calibration",
    "Cluster",
    "ClusterError",
    "ClusterSpec",
    "Deployment",
    "GpuDevice",
    "GpuShare",
    "GpuTable",
    "GpuTableError",
    "Kernel",
    "ModelError",
    "Network",
    "NodeSpec",
    "SimAdaptive",
    "SimSchedule",
    "SimConfig",
    "SimResult",
    "Simulator",
    "StageModel",
    "calibrate",
    "read_calibration",
    "read_stage_models",
]
