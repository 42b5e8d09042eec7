"""Keep large host buffers mapped between steps (glibc only), so a step does not page-fault its
temporaries in again every time it runs.

XLA:CPU allocates an executable's temporary buffers (and its outputs) with malloc at every
execution and frees them after. glibc serves a request above its mmap threshold (at most 32 MiB by
default) with a fresh mmap and returns it to the kernel on free, so the next step touches all of
it again: one minor page fault per 4 KiB. For a 5000-way output layer at batch 2048 that is about
10,000 faults and 40% of the matmul's time (docs/benchmarks.md, "Page faults"). Raising glibc's
mmap and trim thresholds to 1 GiB (`mallopt`) keeps such buffers in the heap, reused step after
step; the cost is that up to that much freed memory stays with the process instead of going back
to the kernel at once.

`keep_large_buffers()` runs at `import aigc_jax` (beside the XLA flags); `AIGC_JAX_MALLOC_TUNING=0`
turns it off. It does nothing where the C library is not glibc.
"""

import ctypes
import ctypes.util
import os

OPT_OUT_ENV = "AIGC_JAX_MALLOC_TUNING"
THRESHOLD = 1 << 30  # bytes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers

_state = {"applied": False}


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds to THRESHOLD; True when it took effect."""
    if os.environ.get(OPT_OUT_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: other C libraries raise AttributeError here)
    except (OSError, AttributeError):
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD) == 1
    _state["applied"] = ok
    return ok


def malloc_tuning_in_effect() -> str | None:
    """For benchmark records: what keep_large_buffers set in this process (None: nothing)."""
    return f"glibc mmap/trim threshold {THRESHOLD >> 20} MiB" if _state["applied"] else None
