"""A word-level view of a text corpus for word2vec: vocabulary, word ids, skip-gram pairs.

The text is the byte stream of each split from `data/text.py` (the embedded `pydoc_text`, or a
prepared TFDS catalog text set), decoded as UTF-8 and lowercased. A word is a run of letters,
digits and underscores holding at least one letter (so `__init__` and `utf8` are words, `42` is
not). The vocabulary is `<unk>` (id 0) followed by the `vocab_size - 1` most frequent train words,
ties broken alphabetically; every other word is `<unk>`. Everything here is a pure function of the
corpus and the arguments, so the view is the same on every host and in every run.

Skip-gram pairs are (center, context) for every context word at most `window` positions away.
Pairs with `<unk>` on either side, and pairs of a word with itself, are left out. Optional
subsampling (Mikolov et al. 2013) drops each train occurrence of word w before the pairs are
cut, with probability 1 - (sqrt(f / t) + 1) * t / f (f = w's share of the train words, t the
threshold), drawn once from a fixed seed; the test split is never subsampled.
"""

import collections
import dataclasses
import functools
import re

import numpy as np

from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.splits import Splits
from aigc_jax.data.text import split_streams
from aigc_jax.errors import UserError

UNK = "<unk>"
WORD = re.compile(r"[a-z0-9_]*[a-z][a-z0-9_]*")
SUBSAMPLE_SEED = 0
RANDOM_PAIR_SEED = 1


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def build_vocab(train_words: list[str], size: int) -> tuple[str, ...]:
    """`<unk>` and the `size - 1` most frequent words (count descending, then alphabetical)."""
    counts = collections.Counter(train_words)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return (UNK, *ranked[:size - 1])


def encode(tokens: list[str], vocab: tuple[str, ...]) -> np.ndarray:
    index = {w: i for i, w in enumerate(vocab)}
    return np.asarray([index.get(w, 0) for w in tokens], np.int32)


def subsample(ids: np.ndarray, counts: np.ndarray, threshold: float, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """`ids` with frequent words dropped (see the module docstring); threshold 0 keeps everything."""
    if threshold <= 0:
        return ids
    freq = counts[ids] / max(counts.sum(), 1)
    keep = np.minimum((np.sqrt(freq / threshold) + 1) * threshold / np.maximum(freq, 1e-12), 1.0)
    return ids[np.random.default_rng(seed).random(len(ids)) < keep]


def skipgram_pairs(ids: np.ndarray, window: int) -> np.ndarray:
    """int32 [N, 2] (center, context): every pair at distance 1..window, in stream order."""
    out = []
    for d in range(1, window + 1):
        left, right = ids[:-d], ids[d:]
        out += [np.stack([left, right], 1), np.stack([right, left], 1)]
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int32)
    keep = (pairs[:, 0] != 0) & (pairs[:, 1] != 0) & (pairs[:, 0] != pairs[:, 1])
    return pairs[keep].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class WordView:
    vocab: tuple[str, ...]
    counts: np.ndarray  # int64 [V]: train occurrences of each vocabulary word (`<unk>` counts the rest)
    train_ids: np.ndarray  # int32 word ids of the train split, in order
    test_ids: np.ndarray

    def index(self, word: str) -> int | None:
        return self.vocab.index(word) if word in self.vocab else None

    def negative_distribution(self, power: float = 0.75) -> np.ndarray:
        """float64 [V]: the unigram distribution of the train words to the `power`; `<unk>` gets 0."""
        weights = self.counts.astype(np.float64) ** power
        weights[0] = 0.0
        return weights / weights.sum()


@functools.lru_cache(maxsize=4)
def word_view(dataset: str, data_dir: str, vocab_size: int) -> WordView:
    """The word view of `dataset` with a vocabulary of `vocab_size` (read once per process)."""
    streams = split_streams(dataset, tfds_data_dir(data_dir))
    train, test = (words(bytes(streams[s]).decode("utf-8", errors="replace")) for s in ("train", "test"))
    vocab = build_vocab(train, vocab_size)
    train_ids, test_ids = encode(train, vocab), encode(test, vocab)
    counts = np.bincount(train_ids, minlength=len(vocab)).astype(np.int64)
    if len(vocab) < 3:
        raise UserError(f"dataset {dataset!r} has {len(vocab) - 1} distinct words; expected a text with words")
    return WordView(vocab, counts, train_ids, test_ids)


def load_word_pairs(view: WordView, window: int, threshold: float) -> Splits:
    """Skip-gram pairs of each split. The test split also holds `random`: its contexts shuffled with
    a fixed seed, a partner word with the same distribution that is (almost always) not a neighbour."""
    train = skipgram_pairs(subsample(view.train_ids, view.counts, threshold), window)
    test = skipgram_pairs(view.test_ids, window)
    if not len(train) or not len(test):
        raise UserError(f"config.window={window} gives no skip-gram pairs in a split; expected a corpus with "
                        "in-vocabulary neighbouring words")
    shuffled = test[np.random.default_rng(RANDOM_PAIR_SEED).permutation(len(test)), 1]
    return Splits(train={"center": train[:, 0], "context": train[:, 1]},
                  test={"center": test[:, 0], "context": test[:, 1], "random": shuffled})
