"""One flat JSON record per measurement, the same fields for every framework.

`status` is "ok" (timed), "skipped" (could not run here; `reason` says why: no preset, torch not
installed, torch.compile unavailable, ...) or "error" (an unexpected failure; `reason` holds it).
"""

from aigc_jax.benchmarks.timing import Timing

FRAMEWORKS = ("jax", "torch-eager", "torch-compile")

FIELDS = (
    "family", "mode", "framework", "status", "reason", "preset", "dtype", "batch_size",
    "steps_per_s", "examples_per_s", "tokens_per_s",
    "step_ms_median", "step_ms_p10", "step_ms_p90", "steps_timed", "steps_per_window",
    "lower_s", "compile_s", "compile_warm_s", "compile_method", "first_call_s", "step_compiles",
    "flops_per_step", "xla_flops_per_step", "tflops", "peak_tflops", "peak_source", "mfu",
    "compiled_memory_bytes", "device_peak_memory_bytes",
    "device_kind", "n_devices", "backend", "shape",
    "xla_flags",  # XLA_FLAGS as the JAX step ran with it (None for torch rows)
    "profile_dir",  # where a jax.profiler trace of the timed steps went; None when not profiled
    # Timed side by side with the family's other frameworks: each round's median step time, in
    # order (how much the host moved); None when timed alone.
    "round_medians_ms",
)


def new_record(family: str, mode: str, framework: str, preset: str, **fields) -> dict:
    record = dict.fromkeys(FIELDS)
    record.update(family=family, mode=mode, framework=framework, preset=preset, status="ok", reason="")
    record.update(fields)
    return record


def skipped(record: dict, reason: str, status: str = "skipped") -> dict:
    return {**record, "status": status, "reason": reason}


def with_timing(record: dict, timing: Timing, flops_per_step: float, tokens_per_step: int,
                peak_tflops: float | None) -> dict:
    """Add the timing and everything derived from it: rates, achieved TFLOP/s and MFU."""
    steps_per_s = timing.steps_per_s
    flops = float(flops_per_step or 0.0)
    tflops = flops * steps_per_s / 1e12 if flops else None
    return {
        **record,
        "steps_per_s": steps_per_s,
        "examples_per_s": steps_per_s * record["batch_size"] if record.get("batch_size") else None,
        "tokens_per_s": steps_per_s * tokens_per_step if tokens_per_step else None,
        "step_ms_median": timing.step_ms_median,
        "step_ms_p10": timing.step_ms_p10,
        "step_ms_p90": timing.step_ms_p90,
        "steps_timed": timing.steps_timed,
        "steps_per_window": timing.steps_per_window,
        "round_medians_ms": list(timing.round_medians_ms) or None,
        "flops_per_step": flops or None,
        "tflops": tflops,
        "peak_tflops": peak_tflops,
        "mfu": tflops / peak_tflops if tflops and peak_tflops else None,
    }


def rescaled_peak(record: dict, factor: float, peak_source: str) -> dict:
    """The record against its devices' peak times `factor` (the peak measured again, higher)."""
    if not record.get("peak_tflops"):
        return record
    peak = record["peak_tflops"] * factor
    return {**record, "peak_tflops": peak, "peak_source": peak_source,
            "mfu": record["tflops"] / peak if record.get("tflops") else None}


def check(record: dict) -> list[str]:
    """Problems with a record's shape (used by the tests and before writing)."""
    problems = [f"missing field {k!r}" for k in FIELDS if k not in record]
    if record.get("framework") not in FRAMEWORKS:
        problems.append(f"framework {record.get('framework')!r} not in {FRAMEWORKS}")
    if record.get("status") not in ("ok", "skipped", "error"):
        problems.append(f"status {record.get('status')!r}")
    if record.get("status") == "ok":
        for key in ("steps_per_s", "step_ms_median", "step_ms_p10", "step_ms_p90", "batch_size"):
            value = record.get(key)
            if not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{key}={value!r} is not a positive number")
        if not problems and not record["step_ms_p10"] <= record["step_ms_median"] <= record["step_ms_p90"]:
            problems.append("step times are not ordered p10 <= median <= p90")
    elif not record.get("reason"):
        problems.append("a record that did not run must say why")
    return problems
