"""Steady-state step timing, the same for every framework.

`run(n)` must execute n steps and return only when their results are ready (JAX:
`block_until_ready`; PyTorch on GPU: `synchronize`). Steps are timed in windows of k steps, with k
chosen so that a window lasts about `WINDOW_S`: short steps are then timed with the framework's
asynchronous dispatch at work, as in a training loop, and long ones one by one. The spread
(p10/p90) is over windows.
"""

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

WINDOW_S = 0.02  # target length of one timed window
MIN_WINDOWS = 10
MAX_WINDOW_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Timing:
    step_ms_median: float
    step_ms_p10: float
    step_ms_p90: float
    steps_timed: int
    windows: int
    steps_per_window: int
    warmup_steps: int

    @property
    def steps_per_s(self) -> float:
        return 1000.0 / self.step_ms_median


# What step times are read with: wall time, or the process's CPU time (`--clock process`). On a
# busy machine, pinned to one core with one thread per framework, CPU time is the work a step
# costs rather than how long the neighbours let it run (multi-threaded, it also counts waiting).
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> tuple[float, object]:
    start = clock()
    out = fn()
    return clock() - start, out


def measure(run: Callable[[int], None], seconds: float, warmup_s: float | None = None,
            min_windows: int = MIN_WINDOWS, clock: Callable[[], float] = time.perf_counter,
            around_windows: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> Timing:
    """Warm up for about `warmup_s` (default: a quarter of `seconds`), then time windows of steps
    for about `seconds` and at least `min_windows` windows. `around_windows()` is entered around
    the timed windows only (not the warm-up): a profiler trace, for instance."""
    warmup_s = seconds / 4 if warmup_s is None else warmup_s
    # Warm-up, one step at a time: it also estimates the step time that sizes the windows.
    warm, spent, last = 0, 0.0, math.inf
    while warm < 2 or spent < warmup_s:
        last, _ = timed(lambda: run(1), clock)
        spent += last
        warm += 1
    k = int(min(MAX_WINDOW_STEPS, max(1, round(WINDOW_S / max(last, 1e-9)))))
    per_step, spent = [], 0.0
    with around_windows():
        while len(per_step) < min_windows or spent < seconds:
            t, _ = timed(lambda: run(k), clock)
            spent += t
            per_step.append(t / k)
    ms = np.asarray(per_step) * 1000.0
    return Timing(step_ms_median=float(np.median(ms)), step_ms_p10=float(np.percentile(ms, 10)),
                  step_ms_p90=float(np.percentile(ms, 90)), steps_timed=k * len(per_step),
                  windows=len(per_step), steps_per_window=k, warmup_steps=warm)
