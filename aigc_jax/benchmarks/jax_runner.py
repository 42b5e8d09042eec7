"""Time the engine's own compiled train step (`compile_task`, as `python -m train` runs it).

Per (family, mode): the task is built at the preset's config, its state initialised exactly as the
training loop does, and `N_BATCHES` batches of the preset's shape (the family's own data, as the
loop samples it) are placed on the devices before timing. Compile time is taken apart from the
steady state: lower + compile ahead of time where the step can be lowered, then the first call.
This module never imports torch.
"""

import contextlib
import functools
import os
import time
import traceback
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from aigc_jax.engine import run as engine_run
from aigc_jax.engine.compile import check_fits
from aigc_jax.errors import UserError
from aigc_jax.benchmarks import records
from aigc_jax.benchmarks.environment import xla_flags_env
from aigc_jax.benchmarks.peaks import Peak
from aigc_jax.benchmarks.presets import preset_config
from aigc_jax.benchmarks.timing import ROUNDS, Timed, Timing, measure, measure_side_by_side, timed

N_BATCHES = 4  # distinct on-device batches, used in rotation
# One compiled copy of a whole state (leaf by leaf, every shape would compile its own copy).
_copy_tree = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


def _xla_cost(executable, n_devices: int, mode: str) -> float | None:
    """XLA's FLOP count of the compiled step, over all devices (a cross-check only)."""
    try:
        cost = executable.cost_analysis()
    except Exception:  # not every backend implements it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    if flops is None or flops < 0:
        return None
    # The SPMD-partitioned program is per device.
    return float(flops) * (n_devices if mode in ("sharded", "shard_map") else 1)


def _compiled_memory(executable) -> int | None:
    try:
        m = executable.memory_analysis()
    except Exception:
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _device_peak_memory(devices) -> int | None:
    stats = [d.memory_stats() for d in devices]
    peaks = [s.get("peak_bytes_in_use") for s in stats if s]
    return max(peaks) if peaks and None not in peaks else None


def initial_data_and_state(task):
    """The family's data splits (or None) and the training loop's initial state."""
    data = task.load_data()
    return data, engine_run.initial_state(task.bind(data), data, engine_run.root_keys(task.config.seed)["init"])


def trace_dir(profile_root: str, family: str, mode: str) -> str:
    """One trace directory per measurement, so TensorBoard lists each as its own run."""
    return os.path.join(profile_root, family, mode)


def _trace_around(directory: str | None) -> Callable[[], contextlib.AbstractContextManager]:
    return functools.partial(jax.profiler.trace, directory) if directory else contextlib.nullcontext


def benchmark_task(task, mode: str, preset: str, seconds: float, peak: Peak,
                   prepare: Callable = initial_data_and_state, clock: Callable[[], float] = time.perf_counter,
                   profile_dir: str | None = None) -> dict:
    """One timed record for `task` (already configured) in parallel `mode`. `prepare(task)` gives
    the data and the initial state (the state is copied, not consumed). With `profile_dir`, a
    jax.profiler trace of the timed windows (not the compile, not the warm-up) is written there."""
    step = prepare_task(task, mode, preset, peak, prepare, profile_dir)
    return step.finish(measure(step.run, seconds, clock=clock, around_windows=_trace_around(profile_dir)))


def prepare_task(task, mode: str, preset: str, peak: Peak, prepare: Callable = initial_data_and_state,
                 profile_dir: str | None = None) -> Timed:
    """`task`'s compiled step in `mode`, compiled (compile time and first call recorded) and ready
    to be timed."""
    config = task.config
    devices = check_fits(mode, config.batch_size)  # first: it rejects a batch the devices do not divide
    platform = devices[0].platform
    record = records.new_record(
        task.name, mode, "jax", preset, dtype=config.get("dtype", "float32"), batch_size=config.batch_size,
        device_kind=devices[0].device_kind, n_devices=len(devices), backend=platform,
        peak_source=peak.source, shape=dict(type(task).benchmark_presets.get(preset, {})),
        xla_flags=xla_flags_env(), profile_dir=profile_dir)

    data, state = prepare(task)
    # The loop's assembly (bound task, compiled step, keys, placement), from a copy of the shared
    # initial state: the step donates its input.
    run = engine_run.Run(task, data, mode=mode, state=_copy_tree(state))
    compiled, state = run.compiled, run.state
    batches = [compiled.place_batch(run.host_batch(i)) for i in range(N_BATCHES)]
    rngs = [jax.random.fold_in(run.keys["train"], i) for i in range(N_BATCHES)]
    jax.block_until_ready((state, batches, rngs))

    step = compiled.train_step
    if hasattr(step, "lower"):  # a jitted step: compile it ahead of time, separately timed
        lower_s, lowered = timed(lambda: step.lower(state, batches[0], rngs[0]))
        compile_s, executable = timed(lowered.compile)
        record.update(lower_s=lower_s, compile_s=lower_s + compile_s, compile_method="lower+compile",
                      xla_flops_per_step=_xla_cost(executable, len(devices), mode),
                      compiled_memory_bytes=_compiled_memory(executable))
        if jax.config.jax_compilation_cache_dir:
            # Warm: what a second run pays with the persistent compilation cache (in-memory caches dropped).
            jax.clear_caches()
            record["compile_warm_s"], _ = timed(lambda: step.lower(state, batches[0], rngs[0]).compile())
    first_call_s, (state, metrics) = timed(lambda: jax.block_until_ready(step(state, batches[0], rngs[0])))
    record["first_call_s"] = first_call_s
    if record["compile_s"] is None:  # pmap: the engine's step is a Python wrapper; its first call compiles
        record.update(compile_s=first_call_s, compile_method="first call")

    carry = {"state": state, "i": 1}

    def run(n: int) -> None:
        s, i = carry["state"], carry["i"]
        for _ in range(n):
            s, m = step(s, batches[i % N_BATCHES], rngs[i % N_BATCHES])
            i += 1
        jax.block_until_ready((s, m))
        carry.update(state=s, i=i)

    def finish(timing: Timing) -> dict:
        if hasattr(step, "_cache_size"):
            # A step that compiled more than once (input types that change after a step) would hide
            # compile time inside the timed windows.
            record["step_compiles"] = step._cache_size()
        record["device_peak_memory_bytes"] = _device_peak_memory(devices)
        return records.with_timing(record, timing, task.flops_per_step(), task.tokens_per_step(),
                                   peak.total(len(devices), platform))

    return Timed(run, finish)


def benchmark_family(cls, preset: str, modes, dtype: str | None, seconds: float, peak: Peak,
                     log=print, clock: Callable[[], float] = time.perf_counter,
                     profile_root: str | None = None, beside: Sequence[Timed] = ()) -> list[dict]:
    """Records for family `cls` in every mode; a mode that cannot run says why. The data and the
    initial state (whose compilation can cost more than the step's) are made once for all modes.
    With `profile_root`, each mode's timed steps are traced into `trace_dir(profile_root, family, mode)`.
    `beside`: other frameworks' steps (its PyTorch twins), prepared, timed side by side with the
    first mode that runs (`measure_side_by_side`); alone after the JAX modes when profiling or if
    none runs. Their records follow the JAX ones."""
    out, prepared, beside_records = [], [], []

    def prepare_once(task):
        if not prepared:
            prepared.append(initial_data_and_state(task))
        return prepared[0]

    for mode in modes:
        base = records.new_record(cls.name, mode, "jax", preset, dtype=dtype)
        try:
            config, why = preset_config(cls, preset, mode, dtype)
            if config is None:
                out.append(records.skipped(base, why))
                log(f"  {cls.name:<14} {mode:<10} jax: skipped ({why})")
                continue
            profile_dir = trace_dir(profile_root, cls.name, mode) if profile_root else None
            task = cls(config)
            if beside and not beside_records and not profile_dir:
                step = prepare_task(task, mode, preset, peak, prepare_once)
                timings = measure_side_by_side([step.run, *(b.run for b in beside)], seconds, clock=clock)
                out.append(step.finish(timings[0]))
                beside_records = [b.finish(t) for b, t in zip(beside, timings[1:])]
            else:
                out.append(benchmark_task(task, mode, preset, seconds, peak, prepare_once, clock, profile_dir))
            r = out[-1]
            log(f"  {cls.name:<14} {mode:<10} jax: {r['steps_per_s']:9.1f} steps/s  "
                f"{r['step_ms_median']:8.3f} ms  compile {r['compile_s']:.2f} s"
                + (f"  (profiled: {profile_dir})" if profile_dir else "")
                + (f"  (side by side with {len(beside)} more, {ROUNDS} rounds)" if r["round_medians_ms"] else ""))
        except UserError as e:  # e.g. a batch the device count does not divide
            out.append(records.skipped(base, str(e)))
            log(f"  {cls.name:<14} {mode:<10} jax: skipped ({e})")
        except Exception as e:  # keep the other measurements; the run's exit status reports it
            reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            out.append(records.skipped(base, reason, status="error"))
            log(f"  {cls.name:<14} {mode:<10} jax: ERROR {reason}")
            log(traceback.format_exc())
    if beside and not beside_records:  # profiled (the trace slows the JAX windows), or no JAX step ran
        beside_records = [b.finish(measure(b.run, seconds, clock=clock)) for b in beside]
    return out + beside_records
