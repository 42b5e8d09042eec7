"""Resuming from a checkpoint reproduces an uninterrupted run exactly; SIGTERM saves and exits 0."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_metrics, train_family

TINY = dict(batch_size=16, log_every=1, eval_every=5, sample_every=0, ckpt_every=5)
SMALL = {"mlp_gan": dict(g_hidden="32,64", d_hidden="64,32"), "vae": dict(hidden=64)}


@pytest.mark.parametrize("family", ["mlp_gan", "vae"])
def test_resume_equals_uninterrupted(tmp_path, family):
    small = {**TINY, **SMALL[family]}
    _, straight = train_family(family, tmp_path / "straight", steps=20, **small)
    train_family(family, tmp_path / "resumed", steps=10, **small)
    summary, resumed = train_family(family, tmp_path / "resumed", fresh=False, steps=20, **small)
    assert summary["step"] == 20
    assert resumed == straight  # every logged metric at every step, bit for bit


def test_fresh_starts_over(tmp_path):
    train_family("mlp", tmp_path, steps=4, **TINY)
    _, rows = train_family("mlp", tmp_path, fresh=True, steps=2, **TINY)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    cmd = [sys.executable, "-m", "train", "mlp", "--workdir", str(tmp_path), "--quiet",
           "--config.steps=100000", "--config.log_every=1", "--config.ckpt_every=0", "--config.eval_every=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM after step" in out
    stopped = int(out.split("stopped by SIGTERM after step ")[1].split(";")[0])
    assert (tmp_path / "checkpoints" / str(stopped)).is_dir(), (out, err, os.listdir(tmp_path / "checkpoints"))
    assert read_metrics(tmp_path)[-1]["step"] == stopped

    again = subprocess.run(cmd[:7] + [f"--config.steps={stopped + 3}", "--config.log_every=1"],
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert f"resumed from step {stopped}" in again.stdout
    assert read_metrics(tmp_path)[-1]["step"] == stopped + 3
