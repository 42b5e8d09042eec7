"""Peak FLOP rates for MFU: a table of accelerators' dense bf16 peaks, or a measured matmul peak.

Table values are per device, dense (no sparsity), bf16, in TFLOP/s. A device the table does not
know (a CPU) gets its peak measured once per run: the best rate of a large float32 matmul through
XLA, labelled as measured in every record.
"""

import dataclasses
import time

import jax
import jax.numpy as jnp

# device_kind substring (lower case) -> dense bf16 TFLOP/s per device. Checked in order, so the
# more specific names come first ("tpu v5 lite" is v5e, plain "tpu v5" is v5p).
PEAK_TFLOPS = (
    ("h200", 989.0),
    ("h100", 989.0),
    ("a100", 312.0),
    ("tpu v5 lite", 197.0),
    ("tpu v5e", 197.0),
    ("tpu v5p", 459.0),
    ("tpu v5", 459.0),
    ("tpu v4", 275.0),
)


@dataclasses.dataclass(frozen=True)
class Peak:
    tflops_per_device: float
    source: str  # "table: ..." or "measured: ..."

    def total(self, n_devices: int, platform: str) -> float:
        """The peak of the devices a step runs on. Simulated CPU devices share the host's cores,
        so on CPU the measured host peak is the whole budget however many devices there are."""
        return self.tflops_per_device if platform == "cpu" else self.tflops_per_device * n_devices


def table_peak(device_kind: str) -> float | None:
    kind = device_kind.lower()
    return next((tflops for name, tflops in PEAK_TFLOPS if name in kind), None)


def measure_matmul_peak(size: int = 2048, repeats: int = 10, device=None, clock=time.perf_counter) -> float:
    """Best TFLOP/s of a [size, size] @ [size, size] float32 matmul through XLA on `device`."""
    device = device or jax.devices()[0]
    a = jax.device_put(jax.random.normal(jax.random.key(0), (size, size), jnp.float32), device)
    b = jax.device_put(jax.random.normal(jax.random.key(1), (size, size), jnp.float32), device)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        matmul(a, b).block_until_ready()
        best = min(best, clock() - start)
    return 2.0 * size**3 / best / 1e12


def device_peak(device, matmul_size: int = 2048, clock=time.perf_counter) -> Peak:
    tflops = table_peak(device.device_kind)
    if tflops is not None:
        return Peak(tflops, f"table: {device.device_kind} dense bf16")
    measured = measure_matmul_peak(matmul_size, device=device, clock=clock)
    return Peak(measured, f"measured: best of 10 float32 {matmul_size}x{matmul_size} matmuls through XLA")
