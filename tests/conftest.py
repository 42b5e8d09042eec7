"""Test setup: 4 simulated CPU devices, a private TFDS data dir, and a helper to train tiny runs."""

import json
import os
import shutil
import tempfile

CREATED = []  # the temporary folders this process made: removed when its session ends


def _private_dir(variable: str, prefix: str) -> None:
    """A fresh folder in `variable` unless it is set (xdist workers inherit the controller's)."""
    if not os.environ.get(variable):
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        CREATED.append(os.environ[variable])


# Before JAX is imported anywhere: simulate 4 devices so every parallel mode really splits batches.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
_private_dir("TFDS_DATA_DIR", "aigc_jax_tfds_")
# One persistent compilation cache for the session: runs that compile the same step again (resume
# tests, subprocess CLI runs) load it from disk. Results are identical; only compile time drops.
_private_dir("AIGC_JAX_COMPILE_CACHE", "aigc_jax_xla_cache_")

from aigc_jax.engine.distributed import enable_compilation_cache  # noqa: E402

enable_compilation_cache()

import pytest  # noqa: E402


def read_metrics(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_family(family: str, workdir, fresh: bool = True, **overrides) -> tuple[dict, list[dict]]:
    """Train `family` in-process with config overrides; return (summary, metrics.jsonl rows)."""
    from aigc_jax.engine.loop import train_and_evaluate
    from aigc_jax.cli import build_task

    task = build_task(family, {k: str(v) for k, v in overrides.items()})
    summary = train_and_evaluate(task, str(workdir), fresh=fresh, log=lambda *a: None, show_progress=False)
    return summary, read_metrics(workdir)


def run_mode(family: str, overrides: dict, mode: str, data, steps: int, batch: int, metric: str):
    """`steps` compiled train steps of `family` in parallel `mode` on the loop's batches and keys:
    (the per-step values of `metric`, the final state as one global host copy)."""
    import jax

    from aigc_jax.cli import build_task
    from aigc_jax.engine.run import Run

    run = Run(build_task(family, {**overrides, "batch_size": str(batch), "parallel": mode}), data)
    values = [float(run.advance()[metric]) for _ in range(steps)]
    return values, jax.device_get(run.canonical_state())


@pytest.fixture
def train():
    return train_family


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
    """A workdir holding a finished tiny mlp run (with a checkpoint) that bad input must not touch."""
    workdir = tmp_path_factory.mktemp("trained")
    train_family("mlp", workdir, steps=2, batch_size=8, ckpt_every=2, eval_every=0, sample_every=0)
    return workdir


def pytest_sessionfinish(session, exitstatus):
    for path in CREATED:
        shutil.rmtree(path, ignore_errors=True)
