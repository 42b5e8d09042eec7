"""engine/host_memory.py: with the engine's malloc settings, a step's large temporaries stay mapped
between executions (few page faults per call); without them (opt-out), glibc maps them afresh."""

import json
import os
import subprocess
import sys

import pytest

from aigc_jax.engine import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A jitted step with 39 MiB temporaries (2048 x 5000 float32 logits), like lstm_lm's output layer:
# one ("max": the logits' row maxima) or two at once ("cross_entropy": the logits and their
# exponentials, 78 MiB, more than a worker thread's malloc heap holds). The engine's compile module
# sets how CPU steps are dispatched, so the probe imports it as every training run does.
PROBE = """
import json, resource, sys
import aigc_jax, aigc_jax.engine.compile, jax, jax.numpy as jnp, optax
a = jnp.ones((2048, 256)); b = jnp.ones((256, 5000)); labels = jnp.zeros((2048,), jnp.int32)
f = jax.jit({"max": lambda a, b: (a @ b).max(-1),
             "cross_entropy": lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a @ b, labels).mean()
             }[sys.argv[1]])
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


def faults_per_call(setting: str, step: str) -> dict:
    env = {**os.environ, host_memory.OPT_OUT_ENV: setting}
    done = subprocess.run([sys.executable, "-c", PROBE, step], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("step, pages", [("max", 10_000), ("cross_entropy", 20_000)])
def test_large_temporaries_stay_mapped_between_steps(step, pages):
    tuned, plain = faults_per_call("1", step), faults_per_call("0", step)
    assert "dispatched inline" in tuned["tuning"] and plain["tuning"] is None
    if plain["faults"] < 1000:  # e.g. transparent huge pages "always": 2 MiB pages, nothing to save
        pytest.skip(f"this machine faults {plain['faults']:.0f} times per call without the setting")
    # 39 MiB = ~10,000 pages per temporary: faulted in again on every call without the settings; with
    # them, ~0 per call (the calling thread's arena keeps the buffers). The 78 MiB step needs both: with
    # the thresholds alone (asynchronous dispatch), a worker thread's arena maps it afresh every call.
    assert plain["faults"] > 0.5 * pages and tuned["faults"] < 0.05 * plain["faults"], (tuned, plain)


# The training command asks for the devices (the batch must divide them) before it compiles anything:
# the dispatch setting must already be in place then, or the run's steps go to a worker thread.
CLI_PROBE = """
import sys
from aigc_jax.cli import main
main(sys.argv[1:])
from aigc_jax.engine.host_memory import malloc_tuning_in_effect
print(malloc_tuning_in_effect())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_training_command_runs_cpu_steps_on_the_calling_thread(tmp_path):
    command = [sys.executable, "-c", CLI_PROBE, "mlp", "--config.steps=1", "--workdir", str(tmp_path), "--quiet"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CPU steps dispatched inline" in done.stdout.strip().splitlines()[-1], done.stdout[-500:]
