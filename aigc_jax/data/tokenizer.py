"""A small fixed-vocabulary tokenizer for the seq2seq tasks: symbols <-> ids, padding, BOS/EOS.

Ids 0, 1, 2 are PAD, BOS and EOS in every vocabulary, so models and decoders can use the
constants. Sources are split into characters, targets into words (a hyphen is a token of its
own, so "twenty-seven" is three tokens and the vocabulary stays closed).
"""

import re
from collections.abc import Sequence

import numpy as np

from aigc_jax.errors import UserError

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


def characters(text: str) -> list[str]:
    return list(text)


def words(text: str) -> list[str]:
    """'twenty-seven thousand' -> ['twenty', '-', 'seven', 'thousand']."""
    return re.findall(r"[^\s-]+|-", text)


def join_words(tokens: Sequence[str]) -> str:
    """The inverse of `words` for text without spaces around hyphens."""
    return " ".join(tokens).replace(" - ", "-")


class Vocabulary:
    """Special tokens first, then `symbols` in the order given."""

    def __init__(self, symbols: Sequence[str]):
        self.tokens = (*SPECIALS, *symbols)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("vocabulary symbols must be distinct and differ from the special tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, symbols: Sequence[str]) -> list[int]:
        unknown = [s for s in symbols if s not in self.ids]
        if unknown:
            raise UserError(f"symbol {unknown[0]!r} is not in the vocabulary; expected one of "
                            f"{' '.join(self.tokens[len(SPECIALS):])}")
        return [self.ids[s] for s in symbols]

    def decode(self, ids) -> list[str]:
        """Symbols up to the first EOS, without PAD and BOS."""
        out = []
        for i in np.asarray(ids).tolist():
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.tokens[i] if i < len(self.tokens) else "<unk>")
        return out

    def pad(self, sequences: Sequence[Sequence[int]], length: int, bos: bool) -> np.ndarray:
        """[N, length] int32 rows of (BOS) ids EOS PAD ...; every sequence must fit."""
        out = np.full((len(sequences), length), PAD, np.int32)
        for row, ids in zip(out, sequences):
            full = [BOS] * bos + list(ids) + [EOS]
            if len(full) > length:
                raise ValueError(f"a sequence of {len(full)} tokens does not fit in {length}")
            row[:len(full)] = full
        return out
