"""Crash-proof training: NaN guard, damaged checkpoints, disk space, kill -9 at random moments."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data import sampler
from aigc_jax.engine import loop
from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.guard import NonFiniteError
from aigc_jax.errors import UserError
from aigc_jax.tasks.classifier import MLPClassifier
from conftest import read_metrics, train_family
from aigc_jax.cli import build_task

TINY = dict(batch_size=16, hidden="32,16", log_every=1, eval_every=0, sample_every=0)


class LossBlowsUpAtStep7(MLPClassifier):
    """The mlp family, but the loss is NaN on the 7th batch (as a diverging run would report)."""

    def train_step(self, state, batch, rng):
        new_state, metrics = super().train_step(state, batch, rng)
        data = self.load_data()
        seventh = data.train["image"][sampler.batch_indices(data.num_train, self.config.batch_size, 6, 0)]
        is_seventh = jnp.allclose(batch["image"].sum(), seventh.sum())
        metrics["loss"] = jnp.where(is_seventh, jnp.nan, metrics["loss"])
        return new_state, metrics


def run_blowup(workdir, **overrides):
    config = build_task("mlp", {k: str(v) for k, v in {**TINY, "steps": 10, "ckpt_every": 5, **overrides}.items()}).config
    return loop.train_and_evaluate(LossBlowsUpAtStep7(config), str(workdir), log=lambda *a: None, show_progress=False)


def test_nan_stops_naming_step_and_metric_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteError, match="non-finite loss at step 7.*last good checkpoint: step 5"):
        run_blowup(tmp_path)
    assert os.listdir(tmp_path / "checkpoints") == ["5"]
    assert max(r["step"] for r in read_metrics(tmp_path)) == 6  # nothing logged from the bad step on
    # The kept checkpoint is finite and resumes (the normal family trains on from it).
    summary, _ = train_family("mlp", tmp_path, fresh=False, steps=8, ckpt_every=4, **TINY)
    assert summary["step"] == 8 and np.isfinite(summary["metrics"]["loss"])


def test_nan_policy_skip_drops_only_that_update(tmp_path):
    summary = run_blowup(tmp_path, nan_policy="skip")
    assert summary["skipped_updates"] == [7] and summary["step"] == 10
    rows = read_metrics(tmp_path)
    losses = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert sorted(losses) == list(range(1, 11)) and losses[7] == "nan"
    assert all(np.isfinite(v) for step, v in losses.items() if step != 7)


def corrupt(step_dir):
    """Truncate every data file of a saved state, as a crash during a copy or a bad disk would."""
    for root, _, files in os.walk(step_dir / "state"):
        for name in files:
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(os.path.getsize(f.name) // 3, 1))


def test_full_disk_is_found_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(UserError, match="MiB free; expected at least"):
        train_family("mlp", tmp_path, steps=2, **TINY)
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


KILL_ARGS = ["--quiet", "--config.steps=40", "--config.batch_size=16", "--config.hidden=32,16",
             "--config.log_every=1", "--config.eval_every=20", "--config.ckpt_every=3", "--config.sample_every=0"]


def train_cmd(workdir):
    return [sys.executable, "-m", "train", "mlp", "--workdir", str(workdir), *KILL_ARGS]


def kill_at_random(workdir, rng: random.Random) -> bool:
    """Start training, SIGKILL it at a random moment after it starts stepping; True if it finished first."""
    proc = subprocess.Popen(train_cmd(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "metrics.jsonl"
    start_rows = len(read_metrics(workdir)) if metrics.exists() else 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(read_metrics(workdir)) > start_rows:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return finished


def test_kill_9_at_random_moments_never_breaks_resume(tmp_path):
    straight = subprocess.run(train_cmd(tmp_path / "straight"), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    workdir = tmp_path / "killed"
    rng = random.Random(0)
    kills = sum(not kill_at_random(workdir, rng) for _ in range(4))
    assert kills >= 1
    final = subprocess.run(train_cmd(workdir), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert read_metrics(workdir) == read_metrics(tmp_path / "straight")
    assert Checkpointer(str(workdir / "checkpoints")).all_steps()[-1] == 40
