"""Train batches read ahead of the step that needs them, in one background thread.

A train split on disk (`data/records.py`) costs a read and a decode per batch; done in the loop,
the accelerator would wait for it every step. Here `batch_at(step)` (a pure function of the step:
this host's slice of global batch `step`) runs for the next `BUFFER` steps in a thread while the
current step computes. The order is the step order, so the stream is the same as reading inline,
and a resumed run starts the stream at its restored step: the iterator's state is the step
number, already in every checkpoint.

Why not Grain: its threaded read-ahead (`MapDataset.range(...).map(batch_at).to_iter_dataset(
ReadOptions(...))`) delivered 7-11k examples/s on the 2-core machine where this loop delivered
22-27k at the time, parsing each record by protobuf (mlp's grey 28x28 batches of 128 from a
250,000-example `synthetic_images`; one thread or four alike, as most of the work held the GIL),
and its worker processes (`mp_prefetch`) took 5 s to start and reached 1.3x with two workers,
which then compete with XLA for the same two cores. Two threads here did not help either (a
batch's read and parse hold the GIL), nor did reading inline: on two cores a step and a read
cost their sum whichever thread reads.
"""

import collections
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

BUFFER = 8  # batches prepared ahead


def prefetched(batch_at: Callable[[int], dict], start: int, buffer: int = BUFFER) -> Iterator[dict]:
    """batch_at(start), batch_at(start + 1), ..., each prepared up to `buffer` steps ahead. Closing
    the generator (or dropping it) stops the thread after the batch it is reading."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        pending = collections.deque(pool.submit(batch_at, s) for s in range(start, start + buffer))
        step = start + buffer
        while True:
            batch = pending.popleft().result()  # a read error surfaces here, at its own step
            pending.append(pool.submit(batch_at, step))
            step += 1
            yield batch
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class StepInputs:
    """The host batches of consecutive steps from one read-ahead stream; asking for another step
    than the next one (after a restore) starts a new stream there."""

    def __init__(self, batch_at: Callable[[int], dict]):
        self._batch_at = batch_at
        self._next, self._stream = None, None

    def batch(self, step: int) -> dict:
        if step != self._next:
            if self._stream is not None:
                self._stream.close()
            self._stream = prefetched(self._batch_at, step)
        self._next = step + 1
        return next(self._stream)
