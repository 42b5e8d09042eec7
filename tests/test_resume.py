"""Resuming from a checkpoint reproduces an uninterrupted run exactly; SIGTERM saves and exits 0."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_metrics, train_family

TINY = dict(batch_size=16, log_every=1, eval_every=5, sample_every=0, ckpt_every=5)
SMALL = {"mlp_gan": dict(g_hidden="32,64", d_hidden="64,32"), "vae": dict(hidden=64),
         # colour images read from disk batch by batch, ahead of the step (engine/input_pipeline.py)
         "dcgan": dict(dataset="synthetic_images", num_examples=300, in_memory_mb=0, judge_metrics=False, latent=8,
                       g_channels="16,8,8", d_channels="8,8,16", batch_size=8)}


@pytest.mark.parametrize("family", ["mlp_gan", "vae", "dcgan"])
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


RUN = ["--quiet", "--config.batch_size=16", "--config.hidden=32,16", "--config.log_every=1",
       "--config.eval_every=2", "--config.ckpt_every=2", "--config.sample_every=0"]


def cli(capsys, *argv):
    from aigc_jax.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_finished_run_is_extended_with_steps_alone(tmp_path, capsys):
    assert cli(capsys, "mlp", "--workdir", str(tmp_path / "straight"), *RUN, "--config.steps=6")[0] == 0
    assert cli(capsys, "mlp", "--workdir", str(tmp_path / "run"), *RUN, "--config.steps=4")[0] == 0
    code, out, err = cli(capsys, "mlp", "--workdir", str(tmp_path / "run"), "--quiet", "--config.steps=6")
    assert code == 0, err
    assert "resumed from step 4" in out or "step 6" in out
    assert read_metrics(tmp_path / "run") == read_metrics(tmp_path / "straight")


@pytest.mark.parametrize("override, change", [
    ("--config.batch_size=32", "batch_size: 16 -> 32"),
    ("--config.seed=1", "seed: 0 -> 1"),
    ("--config.learning_rate=0.01", "learning_rate: 0.001 -> 0.01"),
    ("--config.dataset=printed_digits", "dataset: 'digits' -> 'printed_digits'"),
])
def test_resume_refuses_a_change_of_what_the_run_trains_on(tmp_path, capsys, override, change):
    assert cli(capsys, "mlp", "--workdir", str(tmp_path), *RUN, "--config.steps=2")[0] == 0
    config_json = (tmp_path / "config.json").read_text()
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    code, _, err = cli(capsys, "mlp", "--workdir", str(tmp_path), "--quiet", "--config.steps=4", override)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert change in err and "--fresh" in err
    assert (tmp_path / "config.json").read_text() == config_json
    assert sorted(os.listdir(tmp_path / "checkpoints")) == checkpoints


def test_resume_may_change_how_often_and_the_parallel_mode(tmp_path, capsys):
    assert cli(capsys, "mlp", "--workdir", str(tmp_path), *RUN, "--config.steps=2")[0] == 0
    code, _, err = cli(capsys, "mlp", "--workdir", str(tmp_path), "--quiet", "--config.steps=4",
                       "--config.log_every=2", "--config.ckpt_every=0", "--config.parallel=shard_map",
                       "--config.nan_policy=skip", "--config.keep_checkpoints=5")
    assert code == 0, err
    assert '"parallel": "shard_map"' in (tmp_path / "config.json").read_text()


def test_a_signal_before_the_loop_exits_cleanly_with_nothing_written(tmp_path):
    """SIGTERM while the data is prepared: the run says so, exits 0, and wrote nothing."""
    script = (
        "import os, signal, sys\n"
        "from aigc_jax.engine.loop import train_and_evaluate\n"
        "from aigc_jax.tasks.classifier import MLPClassifier\n"
        "from aigc_jax.cli import build_task, report\n"
        "class SignalledWhileLoading(MLPClassifier):\n"
        "    def load_data(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return super().load_data()\n"
        "config = build_task('mlp', {'steps': '5', 'hidden': '32,16', 'batch_size': '16'}).config\n"
        "summary = train_and_evaluate(SignalledWhileLoading(config), sys.argv[1], show_progress=False)\n"
        "print(report(summary, 0.0))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stopped by SIGTERM before training started" in proc.stdout
    assert not (tmp_path / "run").exists()


def test_the_report_says_which_step_each_metric_is_from():
    from aigc_jax.cli import report

    summary = {"family": "mlp", "step": 37, "stopped_by": "SIGINT", "started": True, "skipped_updates": [],
               "steps_per_s": 10.0, "train_metrics": {"loss": 0.5}, "eval_metrics": {"eval_accuracy": 0.9},
               "train_step": 37, "eval_step": 20, "checkpoints": "/w/checkpoints", "checkpoint_steps": [20, 37],
               "metrics_file": "/w/metrics.jsonl", "tensorboard": "/w/tensorboard", "samples": []}
    text = report(summary, 1.0)
    assert "train metrics (step 37): loss=0.5" in text and "eval metrics (step 20):" in text


def test_sampling_writes_files_of_its_own_for_each_seed(tmp_path, capsys):
    assert cli(capsys, "mlp", "--workdir", str(tmp_path), *RUN[:-1], "--config.sample_every=2",
               "--config.steps=2")[0] == 0
    own = tmp_path / "samples" / "predictions_000002.txt"
    before = (own.read_bytes(), os.path.getmtime(own))
    written = []
    for seed in ("0", "1"):
        code, out, err = cli(capsys, "sample", "mlp", "--workdir", str(tmp_path), "--seed", seed)
        assert code == 0, err
        written.append(sorted(line.strip() for line in out.splitlines()[1:]))
    assert (own.read_bytes(), os.path.getmtime(own)) == before
    assert not set(written[0]) & set(written[1])
    assert all(f"_000002_seed{seed}." in path for seed, paths in zip("01", written) for path in paths)
