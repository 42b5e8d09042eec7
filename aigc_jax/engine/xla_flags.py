"""XLA flags the engine sets by default, so that users never need to know them.

XLA reads the XLA_FLAGS environment variable once, when JAX creates its first backend; changing it
later does nothing. So `apply_default_xla_flags()` runs when `aigc_jax` is imported (see
`aigc_jax/__init__.py`), before any JAX computation, and appends the defaults to XLA_FLAGS:

- a flag already named in XLA_FLAGS (set by the user, or by a parent process that imported
  aigc_jax) is kept as it is: defaults never override, and are never appended twice;
- `AIGC_JAX_DEFAULT_XLA_FLAGS=0` (or false/no/off) turns the defaults off;
- the GPU flags are harmless elsewhere: XLA:CPU and TPU ignore `xla_gpu_*` options. XLA aborts only
  on a flag name it does not know, which tests/test_xla_flags.py checks for every default.

`xla_flags_in_effect()` says what XLA_FLAGS holds and which of it came from here, for records.
"""

import os
import sys

OPT_OUT_ENV = "AIGC_JAX_DEFAULT_XLA_FLAGS"
_OFF = ("0", "false", "no", "off")

# MaxText's XLA flags for one GPU host (AI-Hypercomputer/maxtext end_to_end/gpu/a3/test_llama2_7b.sh
# and test_convergence_125m_params.sh, one 8 x H100 VM). Every name was found in the installed
# jaxlib 0.10.2 (libjax_common.so) and is accepted by XLA's flag parser (tests/test_xla_flags.py).
GPU_DEFAULTS = {
    # Schedule asynchronous collectives and copies to overlap with compute.
    "xla_gpu_enable_latency_hiding_scheduler": "true",
    # cuBLAS rather than Triton-generated kernels for matmuls (MaxText found cuBLAS faster).
    "xla_gpu_enable_triton_gemm": "false",
    # Collectives on a high-priority stream, so compute kernels do not delay them.
    "xla_gpu_enable_highest_priority_async_stream": "true",
    # Overlap one while-loop iteration's communication with the next one's compute (scans).
    "xla_gpu_enable_while_loop_double_buffering": "true",
    # Combine small collectives into large ones, up to these sizes (128, 128 and 64 MiB).
    "xla_gpu_all_reduce_combine_threshold_bytes": "134217728",
    "xla_gpu_all_gather_combine_threshold_bytes": "134217728",
    "xla_gpu_reduce_scatter_combine_threshold_bytes": "67108864",
}

# XLA:CPU flags that won a benchmark sweep (docs/benchmarks.md, "XLA:CPU flags"): YNNPACK for
# matmuls only. jaxlib 0.10 sends both matmuls and convolutions to YNNPACK, whose convolutions ran
# slower than XLA's own (cpu preset, medians of 3 interleaved runs without -> with: cnn 12.7 -> 9.4
# ms, dcgan 894 -> 805; gpt, lstm_lm, transformer, mlp_gan, vae within the run-to-run spread).
CPU_DEFAULTS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": "individual_dot"}
# The flag is experimental: a jaxlib that renamed it would abort on the unknown name, so the CPU
# defaults are only set on the jaxlib versions they were measured on.
CPU_DEFAULTS_JAXLIB = ("0.10.",)

# Set by apply_default_xla_flags: what this process appended, and whether a backend already existed.
_state = {"added": [], "backends_started_first": False}


def parse(xla_flags: str) -> dict[str, str | None]:
    """{name: value} of an XLA_FLAGS string ("--a=1 --b" -> {"a": "1", "b": None}); the last
    setting of a name wins, as in XLA."""
    out = {}
    for token in xla_flags.split():
        name, _, value = token.lstrip("-").partition("=")
        if name:
            out[name] = value if "=" in token else None
    return out


def switched_off(variable: str, environ=os.environ) -> bool:
    """Whether the environment variable turning one of the engine's defaults off is set to do so
    (0, false, no or off); this module's, engine/host_memory.py's and engine/cpu_rewrites.py's."""
    return environ.get(variable, "").strip().lower() in _OFF


def defaults_enabled(environ=os.environ) -> bool:
    return not switched_off(OPT_OUT_ENV, environ)


def default_xla_flags(environ=os.environ) -> list[str]:
    """The flags the engine adds by default ("--name=value"), [] when opted out. A name the user
    already set in XLA_FLAGS keeps the user's value (see `xla_flags_in_effect`)."""
    if not defaults_enabled(environ):
        return []
    cpu = CPU_DEFAULTS if _jaxlib_version().startswith(CPU_DEFAULTS_JAXLIB) else {}
    return [f"--{name}={value}" for name, value in {**cpu, **GPU_DEFAULTS}.items()]


def _jaxlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return ""


def backends_started() -> bool:
    # Without importing JAX: if its backend module was never imported, no backend exists yet.
    bridge = sys.modules.get("jax._src.xla_bridge")
    check = getattr(bridge, "backends_are_initialized", None)
    return bool(check and check())


def apply_default_xla_flags(environ=os.environ) -> list[str]:
    """Append the default flags whose names XLA_FLAGS does not already hold; returns those added."""
    present = parse(environ.get("XLA_FLAGS", ""))
    added = [flag for flag in default_xla_flags(environ) if flag[2:].partition("=")[0] not in present]
    if added:
        environ["XLA_FLAGS"] = " ".join([environ.get("XLA_FLAGS", "").strip(), *added]).strip()
    if added and environ is os.environ:  # the record is of this process's own environment
        _state["added"] = _state["added"] + added
        _state["backends_started_first"] = _state["backends_started_first"] or backends_started()
    return added


def xla_flags_in_effect(environ=os.environ) -> dict:
    """What XLA_FLAGS holds now, and which of it the engine's defaults account for.

    `flags`: every flag, {name: value}. `defaults_added`: what this process appended.
    `user_values`: default names that XLA_FLAGS sets to another value (the user's wins).
    `too_late`: True if JAX had already started a backend when the defaults were appended, so XLA
    never read them (aigc_jax was imported after a JAX computation).
    """
    flags = parse(environ.get("XLA_FLAGS", ""))
    defaults = {**CPU_DEFAULTS, **GPU_DEFAULTS}
    return {
        "XLA_FLAGS": environ.get("XLA_FLAGS", ""),
        "flags": flags,
        "defaults_enabled": defaults_enabled(environ),
        "defaults_added": list(_state["added"]),
        "user_values": {n: flags[n] for n in defaults if n in flags and flags[n] != defaults[n]},
        "too_late": _state["backends_started_first"],
    }
