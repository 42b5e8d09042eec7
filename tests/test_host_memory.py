"""engine/host_memory.py: with the engine's malloc setting, a step's large temporaries stay mapped
between executions (few page faults per call); without it (opt-out), glibc maps them afresh."""

import json
import os
import subprocess
import sys

import pytest

from aigc_jax.engine import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A jitted step with a 39 MiB temporary (2048 x 5000 float32 logits), like lstm_lm's output layer.
PROBE = """
import json, resource
import aigc_jax, jax, jax.numpy as jnp
a = jnp.ones((2048, 256)); b = jnp.ones((256, 5000))
f = jax.jit(lambda a, b: (a @ b).max(-1))
for _ in range(3):
    jax.block_until_ready(f(a, b))
# Faults per call in the quietest of 8 windows of 3 calls: the first time a pool thread runs the step,
# its own malloc arena maps the buffer once (on a busy machine, several threads take turns).
windows = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        jax.block_until_ready(f(a, b))
    windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
faults = min(windows)
from aigc_jax.engine.host_memory import malloc_tuning_in_effect
print(json.dumps({"faults": faults, "tuning": malloc_tuning_in_effect()}))
"""


def faults_per_call(setting: str) -> dict:
    env = {**os.environ, host_memory.OPT_OUT_ENV: setting}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_large_temporaries_stay_mapped_between_steps():
    tuned, plain = faults_per_call("1"), faults_per_call("0")
    assert tuned["tuning"] and plain["tuning"] is None
    if plain["faults"] < 1000:  # e.g. transparent huge pages "always": 2 MiB pages, nothing to save
        pytest.skip(f"this machine faults {plain['faults']:.0f} times per call without the setting")
    # 39 MiB = ~10,000 pages: faulted in again on every call without the setting; with it, ~1 per call
    # once the executing thread's arena holds the buffer (a thread new to the step faults it in once).
    assert plain["faults"] > 5000 and tuned["faults"] < 0.5 * plain["faults"], (tuned, plain)
