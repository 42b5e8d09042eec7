"""Trivial baselines: what a model that learned nothing scores on a metric.

A quality figure means something only beside its baseline (a byte LM against the train split's
byte frequencies, a classifier against always answering the most common class). Tests assert a
margin over these and `python -m benchmarks.claims` prints them beside README's figures. The
learned-nothing baseline of a probe (the same network at its initial weights) is
`aigc_jax.Run(task).evaluate()` before any step.
"""

import numpy as np


def unigram_bits(train_symbols, test_symbols, vocab: int = 256) -> float:
    """Held-out bits per symbol of the train split's symbol frequencies (add-one smoothed)."""
    counts = np.bincount(np.asarray(train_symbols).ravel(), minlength=vocab) + 1.0
    return float(-np.log2(counts / counts.sum())[np.asarray(test_symbols).ravel()].mean())


def most_frequent_accuracy(train_symbols, test_symbols) -> float:
    """Accuracy on the test symbols of always answering the train split's most frequent one
    (the majority class of a classifier; always a space for masked bytes)."""
    guess = np.bincount(np.asarray(train_symbols).ravel()).argmax()
    return float((np.asarray(test_symbols) == guess).mean())
