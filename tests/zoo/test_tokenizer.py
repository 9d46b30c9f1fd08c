"""The WordPiece tokenizer and the tiny in-code vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoal.zoo import WordPieceTokenizer, tiny_vocab


@pytest.fixture(scope="module")
def tok() -> WordPieceTokenizer:
    return WordPieceTokenizer(tiny_vocab(), max_len=16)


def test_tiny_vocab_is_deterministic_and_unique() -> None:
    v = tiny_vocab()
    assert v == tiny_vocab() and len(v) == len(set(v))
    assert v[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert {"the", "team", "##s", "##ing", "a", "##z", "!"} <= set(v)


def test_bert_basic_tokenisation(tok: WordPieceTokenizer) -> None:
    # Lower-cased, accents stripped, punctuation split off, words split into the longest known pieces.
    assert tok.tokenize("The Players, naïvely!") == [
        "the",
        "player",
        "##s",
        ",",
        "n",
        "##a",
        "##i",
        "##v",
        "##e",
        "##ly",
        "!",
    ]
    assert tok.tokenize("team\tgames\n\x00won\u200b") == ["team", "game", "##s", "won"]
    assert tok.tokenize("東京") == ["[UNK]", "[UNK]"]  # each ideograph is a word of its own
    assert tok.tokenize("x" * 101) == ["[UNK]"]  # too long to split
    assert tok.tokenize("") == []


def test_case_is_kept_when_asked() -> None:
    vocab = [*tiny_vocab(), "Team"]
    assert WordPieceTokenizer(vocab, lowercase=False).tokenize("Team") == ["Team"]


def test_encode_adds_specials_and_truncates(tok: WordPieceTokenizer) -> None:
    ids = tok.encode("the team")
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and len(ids) == 4
    long = tok.encode(" ".join(["team"] * 50))
    assert len(long) == 16 and long[-1] == tok.sep_id


def test_batch_pads_to_a_bucket(tok: WordPieceTokenizer) -> None:
    ids = tok.batch(["the team", "a"], buckets=(4, 8))
    assert ids.dtype == np.int64 and ids.shape == (2, 4)
    assert ids[1].tolist() == [tok.cls_id, tok.ids["a"], tok.sep_id, tok.pad_id]
    assert tok.batch(["one two three four five six seven"], buckets=(4, 8)).shape[1] == 16  # past the buckets
    with pytest.raises(ValueError, match="no texts"):
        tok.batch([])


def test_vocab_file_and_bad_vocabularies(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    assert WordPieceTokenizer.from_file(str(path)).vocab == tiny_vocab()
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="max_len"):
        WordPieceTokenizer(tiny_vocab(), max_len=2)
