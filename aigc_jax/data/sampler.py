"""A deterministic, shuffling batch sampler whose whole state is the step number.

Batch `step` holds the examples at stream positions [step*B, (step+1)*B) of an endless stream
of epochs, each a fresh permutation drawn from (seed, epoch). Because a batch is a pure function
of (seed, step), the iterator's position is just the step: a resumed run continues on the exact
next batch, and each host can compute its own slice of any global batch without talking to the
others. A split larger than memory (`data/records.py`) is read at the same indices.
"""

import functools

import numpy as np

from aigc_jax.data.records import RecordSplit


@functools.lru_cache(maxsize=4)
def _epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Example indices of global batch `step`."""
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, num_examples)
    out = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
        sel = epochs == epoch
        out[sel] = _epoch_order(num_examples, seed, int(epoch))[offsets[sel]]
    return out


def position(num_examples: int, batch_size: int, step: int) -> dict:
    """The iterator position saved beside a checkpoint (enough to rebuild the stream)."""
    seen = step * batch_size
    return {"step": step, "examples_seen": seen, "epoch": seen // num_examples,
            "num_examples": num_examples, "batch_size": batch_size}


def take(split, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The examples at `indices` of a split: a dict of arrays, or a `RecordSplit` (read from disk)."""
    if isinstance(split, RecordSplit):
        return split.take(indices)
    return {k: v[indices] for k, v in split.items()}
