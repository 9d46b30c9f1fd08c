"""Real models defined in code (nothing downloaded), run by ONNX Runtime with a thread count set per instance."""

from shoal.zoo.cnn import mobilenet_v2_like, resnet18_like, resnet50_like, small_cnn
from shoal.zoo.heads import classification_head, detection_head
from shoal.zoo.inputs import sample_inputs
from shoal.zoo.onnx_builder import GraphBuilder
from shoal.zoo.session import available_gpu_provider, onnx_session, threads_from_env
from shoal.zoo.tokenizer import WordPieceTokenizer, tiny_vocab
from shoal.zoo.transformer import EncoderConfig, mean_pool, transformer_encoder

__all__ = [
    # models
    "small_cnn",
    "resnet18_like",
    "resnet50_like",
    "mobilenet_v2_like",
    "detection_head",
    "classification_head",
    "transformer_encoder",
    "EncoderConfig",
    # text
    "WordPieceTokenizer",
    "tiny_vocab",
    "mean_pool",
    # inputs for profiles and benchmarks
    "sample_inputs",
    # running them
    "onnx_session",
    "available_gpu_provider",
    "threads_from_env",
    # defining more
    "GraphBuilder",
]
