"""What a benchmark ran on: library versions, backend, devices, relevant settings."""

import os
import platform
import sys
from importlib import metadata

import jax

from aigc_jax.engine.host_memory import malloc_tuning_in_effect
from aigc_jax.engine.cpu_rewrites import cpu_rewrites_on
from aigc_jax.engine.xla_flags import xla_flags_in_effect


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def xla_flags_env() -> str:
    """XLA_FLAGS as this process was started with (XLA reads it once, when JAX's backend starts)."""
    return os.environ.get("XLA_FLAGS", "")


def jax_environment() -> dict:
    devices = jax.devices()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine while it ran (1, 5, 15 minute averages): timings on a busy host are slower.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "xla_flags": xla_flags_env(),
        "engine_xla_flags": xla_flags_in_effect(),  # which flags the engine's defaults added
        "malloc_tuning": malloc_tuning_in_effect(),  # engine/host_memory.py
        "cpu_rewrites": cpu_rewrites_on(devices),  # engine/cpu_rewrites.py (jit and sharded steps)
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
    }
