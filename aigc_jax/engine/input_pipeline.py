"""Train batches read ahead of the step that needs them, by Grain's reader threads.

A train split on disk (`data/records.py`) costs a read and a decode per batch; done in the loop,
the accelerator would wait for it every step. Here `batch_at(step)` (a pure function of the step:
this host's slice of global batch `step`) runs for the next steps in Grain's threads while the
current step computes. The order is still the step order, so the stream is the same as reading
inline, and a resumed run starts the stream at its restored step: the iterator's state is the
step number, already in every checkpoint. Threads rather than Grain's worker processes: the work
is array_record reads and numpy decoding, which release the GIL (`python -m benchmarks --input`
measures whether it keeps up with each family's step).
"""

import sys
from collections.abc import Callable, Iterator

import grain

THREADS = 4  # batches prepared at once
BUFFER = 8  # batches held ready


def prefetched(batch_at: Callable[[int], dict], start: int, threads: int = THREADS,
               buffer: int = BUFFER) -> Iterator[dict]:
    """batch_at(start), batch_at(start + 1), ..., each prepared ahead in Grain's threads."""
    steps = grain.MapDataset.range(start, sys.maxsize).map(batch_at)
    return iter(steps.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer)))


class StepInputs:
    """The host batches of consecutive steps from one read-ahead stream; asking for another step
    than the next one (after a restore) starts a new stream there."""

    def __init__(self, batch_at: Callable[[int], dict]):
        self._batch_at = batch_at
        self._next, self._stream = None, None

    def batch(self, step: int) -> dict:
        if step != self._next:
            self._stream = prefetched(self._batch_at, step)
        self._next = step + 1
        return next(self._stream)
