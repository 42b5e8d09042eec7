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

That holds only for the main malloc arena. glibc gives every other thread that allocates an arena
of its own, grown in heaps of at most 64 MiB, and a request that does not fit beside what such a
heap holds is mmap'd afresh whatever the threshold. Under JAX's asynchronous CPU dispatch a
single-device step runs on a worker thread, so a step whose temporaries pass 64 MiB (lstm_lm's
logits and their softmax, 2 x 39 MiB) faults them in at every step again: 29,000 faults and 13% of
the lstm_lm step. `run_cpu_steps_inline()` turns that dispatch off (`jax_cpu_enable_async_dispatch`),
so such a step runs on the calling thread and allocates from the main arena, which grows without
that limit. Python then waits for each step before dispatching the next: of the seven reference
workloads the three with large temporaries got 6-29% faster, the three smallest steps 1-9% slower
(docs/benchmarks.md). Steps over several devices are dispatched as before (JAX applies the
setting to single-device computations only).

`keep_large_buffers()` runs at `import aigc_jax` (beside the XLA flags), `run_cpu_steps_inline()`
when `engine/compile.py` is imported (it needs JAX, which `import aigc_jax` does not load);
`AIGC_JAX_MALLOC_TUNING=0` turns both off. The first does nothing where the C library is not glibc.
"""

import ctypes
import ctypes.util

from aigc_jax.engine.xla_flags import backends_started, switched_off

OPT_OUT_ENV = "AIGC_JAX_MALLOC_TUNING"
THRESHOLD = 1 << 30  # bytes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers

_state = {"applied": False, "inline": False}


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds to THRESHOLD; True when it took effect."""
    if _opted_out():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: other C libraries raise AttributeError here)
    except (OSError, AttributeError):
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD) == 1
    _state["applied"] = ok
    return ok


def _opted_out() -> bool:
    return switched_off(OPT_OUT_ENV)


def run_cpu_steps_inline() -> bool:
    """Run single-device CPU computations on the calling thread (no asynchronous dispatch), before
    JAX starts its CPU backend (later, the backend keeps what it started with); True when set."""
    import jax

    if _opted_out() or not _state["applied"] or backends_started():
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    _state["inline"] = True
    return True


def malloc_tuning_in_effect() -> str | None:
    """For benchmark records: what this module set in this process (None: nothing)."""
    if not _state["applied"]:
        return None
    return f"glibc mmap/trim threshold {THRESHOLD >> 20} MiB" + (", CPU steps dispatched inline" if _state["inline"] else "")
