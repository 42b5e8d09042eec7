"""Seq2seq data as padded id arrays: the embedded synthetic `number_words` translation task.

Each split is {"source": int32 [N, max_source_len] (digits, EOS, PAD...), "target": int32
[N, max_target_len + 1] (BOS, words, EOS, PAD...)}; a decoder reads target[:, :-1] and predicts
target[:, 1:], so it sees `max_target_len` positions.
"""

import functools

import numpy as np

from aigc_jax.data import number_words
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.embedded import prepare, read_all
from aigc_jax.data.splits import Splits
from aigc_jax.data.tokenizer import Vocabulary, characters, words
from aigc_jax.errors import UserError

EMBEDDED = "number_words"
VOCABULARY = Vocabulary((*number_words.SOURCE_SYMBOLS, *number_words.TARGET_WORDS))


@functools.lru_cache(maxsize=2)
def _tokenized(data_dir: str) -> dict[str, tuple[list, list]]:
    """(source ids, target ids) per split, read once per process (the records never change)."""
    sources = prepare(number_words.NumberWords, data_dir).as_data_source()
    out = {}
    for split in ("train", "test"):
        records = read_all(sources[split], EMBEDDED, data_dir)
        out[split] = ([VOCABULARY.encode(characters(r["source"].decode())) for r in records],
                      [VOCABULARY.encode(words(r["target"].decode())) for r in records])
    return out


def _check_fits(sequences, length: int, extra: int, key: str) -> None:
    need = max(len(s) for s in sequences) + extra
    if need > length:
        raise UserError(f"config.{key}={length} is shorter than the longest sequence of the data "
                        f"({need} positions with its special tokens); expected >= {need}")


def load_translation_splits(dataset: str, data_dir: str, max_source_len: int, max_target_len: int) -> Splits:
    if dataset != EMBEDDED:
        raise UserError(f"dataset {dataset!r} is not a translation dataset this project reads; "
                        f"expected the embedded synthetic '{EMBEDDED}'")
    tokenized = _tokenized(tfds_data_dir(data_dir))
    out = {}
    for split, (src, tgt) in tokenized.items():
        _check_fits(src, max_source_len, 1, "max_source_len")  # + EOS
        _check_fits(tgt, max_target_len, 1, "max_target_len")  # the decoder reads BOS .. last word
        out[split] = {"source": VOCABULARY.pad(src, max_source_len, bos=False),
                      "target": VOCABULARY.pad(tgt, max_target_len + 1, bos=True)}
    return Splits(train=out["train"], test=out["test"])


def source_text(ids: np.ndarray) -> str:
    return "".join(VOCABULARY.decode(ids))
