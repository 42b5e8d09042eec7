"""`scrambled_words`: a synthetic two-class task made from the embedded corpus's byte windows:
is this window the docs as written (class 0), or the same window with the inner letters of its
words shuffled (class 1)?

The rule: in a scrambled window every ASCII word of 4 or more letters keeps its first and last
letter and has the letters between them permuted (numpy, a fixed seed per window), as in the
"Cmabrigde" typoglycemia demonstration; everything else (spaces, punctuation, code symbols,
short words) stays. The length and the multiset of bytes are unchanged, so no single-byte count
gives the class away: telling the two apart needs knowing how English and Python words are
spelled, which is what masked-byte pretraining on the same corpus teaches.

Windows are the non-overlapping `seq_len`-byte windows of `pydoc_text` (`tasks/mlm.byte_windows`);
train windows come from the train topics and test windows from the held-out topics, so no byte
of a test window was in a train window. Windows where scrambling changes fewer than
`MIN_CHANGED` bytes (grammar rules, tables of symbols) are dropped from both classes. Each window
is used once, in one class: the test split is every remaining held-out window, each in the class
a fixed draw gives it; the train split is `label_budget` windows per class drawn with `seed`.
"""

import re

import numpy as np

from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

CLASSES = ("original", "scrambled")
MIN_CHANGED = 4  # bytes a scramble must change for a window to be kept
WORD = re.compile(rb"[A-Za-z]{4,}")
TEST_SEED = 0


def scramble(window: np.ndarray, seed: int) -> np.ndarray:
    """The window (uint8 or int32 bytes [T]) with the inner letters of each 4+ letter word permuted."""
    rng = np.random.default_rng(seed)
    out = np.asarray(window).copy()
    for word in WORD.finditer(bytes(np.asarray(window, np.uint8).tolist())):
        inner = np.arange(word.start() + 1, word.end() - 1)
        out[inner] = out[rng.permutation(inner)]
    return out


def scrambled_pairs(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept originals, their scrambles): the windows whose scramble changes >= MIN_CHANGED bytes."""
    scrambled = np.stack([scramble(w, i) for i, w in enumerate(windows)]) if len(windows) else windows
    keep = (scrambled != windows).sum(-1) >= MIN_CHANGED
    return windows[keep], scrambled[keep]


def _labelled(originals, scrambles, labels) -> dict:
    tokens = np.where(labels[:, None] == 1, scrambles, originals).astype(np.int32)
    return {"tokens": tokens, "label": labels.astype(np.int32)}


def scrambled_words_splits(train_windows: np.ndarray, test_windows: np.ndarray, label_budget: int,
                           seed: int) -> Splits:
    """{"tokens": int32 [N, T], "label": int32 [N]} splits (see the module docstring)."""
    train_orig, train_scr = scrambled_pairs(train_windows)
    if 2 * label_budget > len(train_orig):
        raise UserError(f"config.label_budget={label_budget}: the train topics give {len(train_orig)} usable windows; "
                        f"expected at most {len(train_orig) // 2} per class")
    chosen = np.random.default_rng(seed).permutation(len(train_orig))[:2 * label_budget]
    train_labels = np.repeat(np.arange(2), label_budget)
    test_orig, test_scr = scrambled_pairs(test_windows)
    test_labels = np.random.default_rng(TEST_SEED).permutation(np.arange(len(test_orig)) % 2)
    return Splits(train=_labelled(train_orig[chosen], train_scr[chosen], train_labels),
                  test=_labelled(test_orig, test_scr, test_labels))
