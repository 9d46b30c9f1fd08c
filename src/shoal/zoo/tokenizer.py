"""A BERT WordPiece tokenizer in plain Python, and a small English vocabulary built in code.

It follows BERT's ``BasicTokenizer`` + ``WordpieceTokenizer`` (as in Hugging Face's ``BertTokenizer`` with
``do_lower_case=True``): clean control characters, space out CJK ideographs, lower-case and strip accents, split on
whitespace and punctuation, then split each word into the longest vocabulary pieces from the left (``##`` marks a
piece that continues a word; a word that cannot be split is ``[UNK]``). With all-MiniLM-L6-v2's ``vocab.txt`` it
gives the same ids as the ``tokenizers`` library (see :mod:`shoal.zoo.minilm`).

Token ids of a request are padded to a *bucket* length, so that requests of similar length have equal shapes and a
batching runtime can stack them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["BUCKETS", "BASIC_WORDS", "WordPieceTokenizer", "tiny_vocab"]

#: Sequence lengths that token ids are padded to (the smallest that fits the longest text of a request).
BUCKETS = (16, 32, 64, 128, 256)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: Frequent English words, whole tokens of the tiny vocabulary (anything else is spelt in pieces).
BASIC_WORDS = _words(
    """
the of and to in a is that for it as was with be by on not he i this are or his from at which but have an they
you were her she there one all we their has been would when if will more no what so can said who about its out
up them into some time than other only new then could my also these two may first any like now over such our man
me even most made after very back many where much your way well down should because each just those people how
too little state good world make still own see men work long here get both between life being under never day
same another know while last might us great old year off come since against go came right used take three high
every home big small large find thing part place case week company system program question government number
night point water room money market game team play player season city country area school student story service
health family day month report data model result change music film show news price business science research
technology computer software phone internet network image picture video food car road travel trip hotel weather
rain sun court law police election vote president minister party policy war peace energy oil power plant animal
tree river sea mountain doctor patient hospital drug disease test study learning machine language text word book
art history win won lose lost score goal match league cup final stock share rise fall growth bank rate tax
budget cost
"""
)

_SUFFIXES = ("s", "es", "ed", "ing", "er", "est", "ly", "ion", "tion", "ment", "ness", "al", "able", "ful", "less")


def tiny_vocab() -> list[str]:
    """A deterministic vocabulary of about 400 entries: special tokens, characters (so every ASCII word can be
    spelt), common suffixes and :data:`BASIC_WORDS`. Built in code, so nothing is downloaded."""
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    pieces = [*_SPECIAL, *chars, *(f"##{ch}" for ch in chars if ch.isalnum()), *(f"##{s}" for s in _SUFFIXES)]
    return list(dict.fromkeys([*pieces, *BASIC_WORDS]))  # first occurrence wins; order is fixed


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT's tokenizer over ``vocab`` (a list of tokens; a token's id is its index).

    ``max_len`` counts ``[CLS]`` and ``[SEP]``; longer texts are truncated, as sentence encoders do.
    """

    def __init__(self, vocab: Sequence[str], *, lowercase: bool = True, max_len: int = 256) -> None:
        self.vocab = list(vocab)
        self.ids = {tok: i for i, tok in enumerate(self.vocab)}
        missing = [t for t in _SPECIAL[:4] if t not in self.ids]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        if max_len < 3:
            raise ValueError(f"max_len must be >= 3, got {max_len!r}")
        self.lowercase = lowercase
        self.max_len = max_len
        self.pad_id, self.unk_id = self.ids["[PAD]"], self.ids["[UNK]"]
        self.cls_id, self.sep_id = self.ids["[CLS]"], self.ids["[SEP]"]
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: str, **kwargs: object) -> WordPieceTokenizer:
        """Read a ``vocab.txt`` (one token per line, as BERT checkpoints ship it)."""
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f], **kwargs)  # type: ignore[arg-type]

    # -- text -> words --------------------------------------------------------------------------------------------
    def _words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                chars.append(" ")
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        words = []
        for word in "".join(chars).split():
            if self.lowercase:
                word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
            start = 0
            for i, ch in enumerate(word):
                if _is_punctuation(ch):
                    if i > start:
                        words.append(word[start:i])
                    words.append(ch)
                    start = i + 1
            if start < len(word):
                words.append(word[start:])
        return words

    def _pieces(self, word: str) -> list[int]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        out: list[int] = []
        if len(word) > 100:
            out = [self.unk_id]
        else:
            start = 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                    found = self.ids.get(piece)
                    if found is not None:
                        break
                    end -= 1
                if found is None:
                    out = [self.unk_id]
                    break
                out.append(found)
                start = end
        if len(self._cache) < 100_000:
            self._cache[word] = out
        return out

    # -- public -----------------------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``, without special tokens or truncation."""
        return [self.vocab[i] for w in self._words(text) for i in self._pieces(w)]

    def encode(self, text: str) -> list[int]:
        """``[CLS] pieces [SEP]``, truncated to ``max_len`` ids."""
        ids = [i for w in self._words(text) for i in self._pieces(w)][: self.max_len - 2]
        return [self.cls_id, *ids, self.sep_id]

    def batch(self, texts: Iterable[str], buckets: Sequence[int] = BUCKETS) -> np.ndarray:
        """Token ids of ``texts`` as one ``(N, L)`` int64 array padded with ``[PAD]``, where ``L`` is the smallest
        bucket that fits the longest (or the longest itself, past the largest bucket). The mask is ``ids != pad``."""
        rows = [self.encode(t) for t in texts]
        if not rows:
            raise ValueError("no texts to tokenize")
        longest = max(len(r) for r in rows)
        length = next((b for b in sorted(buckets) if b >= longest), longest)
        out = np.full((len(rows), length), self.pad_id, np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
