"""Time a family's PyTorch twin eager and under torch.compile, exactly as the JAX step is timed:
same config (shapes, batch, optimizer), same dtype, batches already on the device, windows of
steps ended by a device synchronisation (`benchmarks.timing`)."""

import functools
import time
from collections.abc import Callable

import numpy as np
import torch

from aigc_jax.benchmarks import records
from aigc_jax.benchmarks.peaks import Peak, table_peak
from aigc_jax.benchmarks.timing import Timed, Timing, measure, timed
from aigc_jax.benchmarks.torch_twins import load_twin

N_BATCHES = 4


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_kind(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def torch_environment(threads: int | None = None) -> dict:
    """Torch's versions and settings; `threads` sets its intra-op thread count first."""
    if threads is not None:
        torch.set_num_threads(threads)
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_device": _device_kind(torch_device())}


def benchmark_twin(family: str, config: dict, preset: str, seconds: float, flops_per_step: float,
                   tokens_per_step: int, host_peak: Peak, log=print,
                   clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """torch-eager and torch-compile records for `family`'s twin at the JAX task's `config`, each timed alone."""
    return [twin if isinstance(twin, dict) else twin.finish(measure(twin.run, seconds, clock=clock))
            for twin in prepare_twins(family, config, preset, flops_per_step, tokens_per_step, host_peak, log)]


def prepare_twins(family: str, config: dict, preset: str, flops_per_step: float, tokens_per_step: int,
                  host_peak: Peak, log=print) -> list[Timed | dict]:
    """`family`'s twin eager and under torch.compile, each built, compiled (first call) and ready
    to be timed; a skipped record instead where torch.compile fails."""
    device = torch_device()
    kind = _device_kind(device)
    tflops = table_peak(kind)
    peak = Peak(tflops, f"table: {kind} dense bf16") if tflops else host_peak
    dtype = config.get("dtype", "float32")
    out = []
    for framework in ("torch-eager", "torch-compile"):
        record = records.new_record(family, "single", framework, preset, dtype=dtype,
                                    batch_size=config.get("batch_size"), device_kind=kind, n_devices=1,
                                    backend=device.type, peak_source=peak.source)
        torch.manual_seed(0)
        twin = load_twin(family)(config, device, dtype)
        record["shape"] = twin.shape
        gen = np.random.default_rng(0)
        batches = [twin.random_batch(gen) for _ in range(N_BATCHES)]
        run = _runner(twin, batches, device)
        if framework == "torch-compile":
            try:
                twin.compile()
                first_call_s, _ = timed(lambda: run(1))
            except Exception as e:  # no C++ compiler, unsupported op, ...: the row says why
                reason = f"torch.compile failed: {type(e).__name__}: {e}".splitlines()[0][:300]
                out.append(records.skipped(record, reason))
                log(f"  {family:<14} {'single':<10} {framework}: skipped ({reason})")
                continue
            record.update(compile_s=first_call_s, compile_method="first call")
        else:
            first_call_s, _ = timed(lambda: run(1))
        record["first_call_s"] = first_call_s
        out.append(Timed(run, functools.partial(_finish, record, flops_per_step, tokens_per_step,
                                                peak.total(1, device.type), log)))
    return out


def _runner(twin, batches: list, device: torch.device) -> Callable[[int], None]:
    position = [0]  # which batch comes next, kept between calls

    def run(n: int) -> None:
        for _ in range(n):
            twin.step(batches[position[0] % N_BATCHES])
            position[0] += 1
        _sync(device)

    return run


def _finish(record: dict, flops_per_step: float, tokens_per_step: int, peak_tflops: float, log,
            timing: Timing) -> dict:
    r = records.with_timing(record, timing, flops_per_step, tokens_per_step, peak_tflops)
    log(f"  {r['family']:<14} {'single':<10} {r['framework']}: {r['steps_per_s']:9.1f} steps/s  "
        f"{r['step_ms_median']:8.3f} ms  first call {r['first_call_s']:.2f} s")
    return r
