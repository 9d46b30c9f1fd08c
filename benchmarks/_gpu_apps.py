"""GPU applications of table models and the simulated GPU cluster they run on, shared by the simulator benchmarks
(``sim_gpu_plans.py``, ``granularity_gpu_sim.py``).

Every GPU stage is a model of the V100 table (``../shared/gpu-profiles/rapp_v100_latency.csv``) and declares
``Resources.gpu`` (an SM partition at full time quota) and GPU memory; a function that groups stages gets
``Resources.combine`` of them: the largest GPU (and vCPU) share and the *sum* of the memories. CPU stages are
lognormal times. ``load_s`` is the model's load time, added to an instance's cold start.
"""

from __future__ import annotations

from typing import Any

from shoal.app import App
from shoal.sim import ClusterSpec, NodeSpec, StageModel


def gpu_cluster(nodes: int = 4, gpus: int = 2) -> ClusterSpec:
    """``nodes`` nodes of 16 cores, 64 GiB and ``gpus`` V100-like GPUs (16 GiB) each; the cluster starts empty."""
    return ClusterSpec.uniform(nodes, NodeSpec(cpus=16, memory_mb=64 * 1024, gpus=gpus, gpu_memory_mb=16 * 1024))


def detect_classify(slo_ms: float) -> tuple[App, dict[str, StageModel]]:
    """A detection-and-classification DAG::

    preprocess (CPU) -> backbone (resnet50) -> head_a (mobilenet_v2)    -> merge (CPU)
                                            -> head_b (efficientnet_b0) ->
    """
    app = App("detect_classify", slo=f"p99:{slo_ms:g}ms")

    @app.stage(vcpu=1.0, memory_mb=512)
    def preprocess(x: Any) -> Any:
        return x

    @app.stage(after=preprocess, vcpu=1.0, memory_mb=1024, gpu=0.3, gpu_memory_mb=2000)
    def backbone(x: Any) -> Any:
        return x

    @app.stage(after=backbone, vcpu=0.5, memory_mb=512, gpu=0.2, gpu_memory_mb=1000)
    def head_a(x: Any) -> Any:
        return x

    @app.stage(after=backbone, vcpu=0.5, memory_mb=512, gpu=0.2, gpu_memory_mb=1200)
    def head_b(x: Any) -> Any:
        return x

    @app.stage(after=[head_a, head_b], vcpu=0.5, memory_mb=256)
    def merge(a: Any, b: Any) -> Any:
        return (a, b)

    models = {
        "preprocess": StageModel.cpu(0.006, cv=0.5, output_bytes=600_000),  # a decoded, resized 224x224x3 float16
        "backbone": StageModel.gpu("resnet50", output_bytes=400_000, load_s=1.2),  # a feature map
        "head_a": StageModel.gpu("mobilenet_v2", output_bytes=4_000, load_s=0.5),
        "head_b": StageModel.gpu("efficientnet_b0", output_bytes=4_000, load_s=0.7),
        "merge": StageModel.cpu(0.002, cv=0.3, output_bytes=2_000),
    }
    return app, models
