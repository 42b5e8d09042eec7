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
from collections.abc import Callable, Sequence

import numpy as np

WINDOW_S = 0.02  # target length of one timed window
MIN_WINDOWS = 10
MAX_WINDOW_STEPS = 1000
ROUNDS = 4  # rounds of `measure_side_by_side` (even: each run's mean position is the same)


@dataclasses.dataclass(frozen=True)
class Timing:
    step_ms_median: float
    step_ms_p10: float
    step_ms_p90: float
    steps_timed: int
    windows: int
    steps_per_window: int
    warmup_steps: int
    round_medians_ms: tuple[float, ...] = ()  # `measure_side_by_side`: each round's median, in order

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


def _warm_up(run: Callable[[int], None], warmup_s: float, clock: Callable[[], float]) -> tuple[int, int]:
    """Run one step at a time for about `warmup_s` (at least two steps): (steps run, steps per
    window), the window sized from the last step's time."""
    warm, spent, last = 0, 0.0, math.inf
    while warm < 2 or spent < warmup_s:
        last, _ = timed(lambda: run(1), clock)
        spent += last
        warm += 1
    return warm, int(min(MAX_WINDOW_STEPS, max(1, round(WINDOW_S / max(last, 1e-9)))))


def _windows(run: Callable[[int], None], k: int, seconds: float, min_windows: int,
             clock: Callable[[], float]) -> list[float]:
    """Seconds per step of each window of k steps, for about `seconds` and at least `min_windows` windows."""
    per_step, spent = [], 0.0
    while len(per_step) < min_windows or spent < seconds:
        t, _ = timed(lambda: run(k), clock)
        spent += t
        per_step.append(t / k)
    return per_step


def _timing(per_step: list[float], k: int, warm: int) -> Timing:
    ms = np.asarray(per_step) * 1000.0
    return Timing(step_ms_median=float(np.median(ms)), step_ms_p10=float(np.percentile(ms, 10)),
                  step_ms_p90=float(np.percentile(ms, 90)), steps_timed=k * len(per_step),
                  windows=len(per_step), steps_per_window=k, warmup_steps=warm)


def measure(run: Callable[[int], None], seconds: float, warmup_s: float | None = None,
            min_windows: int = MIN_WINDOWS, clock: Callable[[], float] = time.perf_counter,
            around_windows: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> Timing:
    """Warm up for about `warmup_s` (default: a quarter of `seconds`), then time windows of steps
    for about `seconds` and at least `min_windows` windows. `around_windows()` is entered around
    the timed windows only (not the warm-up): a profiler trace, for instance."""
    warm, k = _warm_up(run, seconds / 4 if warmup_s is None else warmup_s, clock)
    with around_windows():
        per_step = _windows(run, k, seconds, min_windows, clock)
    return _timing(per_step, k, warm)


def measure_side_by_side(runs: Sequence[Callable[[int], None]], seconds: float, rounds: int = ROUNDS,
                         warmup_s: float | None = None, min_windows: int = MIN_WINDOWS,
                         clock: Callable[[], float] = time.perf_counter) -> list[Timing]:
    """Time several steps (one JAX step and its PyTorch twins, say) in alternation, so that they are
    compared under the same machine: a host whose speed drifts during the run (a shared or
    throttled CPU moves by 20-30% within minutes) slows each of them alike instead of whichever
    happened to run then. Each run is warmed up once (as `measure`); then in each of `rounds`
    rounds each runs one untimed step (whatever the previous framework left spinning or evicted
    settles) and is timed for about `seconds / rounds` and at least `ceil(min_windows / rounds)`
    windows, in the given order in even rounds and the reverse in odd ones (A B C, C B A, ...): over
    an even number of rounds every run sits at the same mean time, so a steady drift favours none.
    A run's median is the median of its rounds' medians; its p10 and p90 pool the windows (widened
    to hold the median, should the rounds' sizes differ wildly)."""
    warmup_s = seconds / 4 if warmup_s is None else warmup_s
    warmed = [_warm_up(run, warmup_s, clock) for run in runs]
    rounds_per_step: list[list[list[float]]] = [[] for _ in runs]  # [run][round] -> seconds per step
    for r in range(rounds):
        for i in range(len(runs)) if r % 2 == 0 else reversed(range(len(runs))):
            runs[i](1)
            rounds_per_step[i].append(_windows(runs[i], warmed[i][1], seconds / rounds, -(-min_windows // rounds), clock))
    out = []
    for per_round, (warm, k) in zip(rounds_per_step, warmed):
        timing = _timing([t for times in per_round for t in times], k, warm + rounds)
        # The median of the rounds' medians: each round counts once, however many windows it held
        # (a pooled median leans towards the rounds whose steps ran faster).
        round_medians = tuple(float(np.median(t) * 1000.0) for t in per_round)
        median = float(np.median(round_medians))
        out.append(dataclasses.replace(timing, step_ms_median=median, step_ms_p10=min(timing.step_ms_p10, median),
                                       step_ms_p90=max(timing.step_ms_p90, median), round_medians_ms=round_medians))
    return out


@dataclasses.dataclass(frozen=True)
class Timed:
    """A step ready to be timed, whatever its framework: `run(n)` runs n steps and returns when
    their results are ready; `finish(timing)` gives its record (and logs it)."""

    run: Callable[[int], None]
    finish: Callable[[Timing], dict]
