"""Real models defined in code (nothing downloaded), run by ONNX Runtime with a thread count set per instance."""

from shoal.zoo.cnn import mobilenet_v2_like, resnet18_like, small_cnn
from shoal.zoo.onnx_builder import GraphBuilder
from shoal.zoo.session import available_gpu_provider, onnx_session, threads_from_env

__all__ = [
    # models
    "small_cnn",
    "resnet18_like",
    "mobilenet_v2_like",
    # running them
    "onnx_session",
    "available_gpu_provider",
    "threads_from_env",
    # defining more
    "GraphBuilder",
]
