"""2 processes x 2 CPU devices (jax.distributed over loopback) match 1 process x 4 devices."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import read_metrics

ARGS = ["--quiet", "--config.steps=6", "--config.batch_size=16", "--config.log_every=1", "--config.eval_every=3",
        "--config.ckpt_every=3", "--config.sample_every=0", "--config.hidden=32,16"]


def env_with_devices(n: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
    env["AIGC_JAX_COMPILE_CACHE"] = "off"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("data", [[], ["--config.dataset=synthetic_images", "--config.num_examples=300",
                                                "--config.in_memory_mb=0"]],
                         ids=["in_memory", "streamed"])
def test_two_processes_match_one(tmp_path, data):
    """Each process reads its half of every global batch: from the arrays in memory, or (streamed)
    only those records from the array_record files of a set on disk."""
    args = [*ARGS, *data]
    single = subprocess.run([sys.executable, "-m", "train", "mlp", "--workdir", str(tmp_path / "one"), *args],
                            env=env_with_devices(4), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr

    port = free_port()
    workdir = str(tmp_path / "two")
    procs = [subprocess.Popen([sys.executable, "-m", "train", "mlp", "--workdir", workdir, *args,
                               "--coordinator", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)],
                              env=env_with_devices(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]

    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), (a["step"], k)
    # Both processes saved into one orbax checkpoint, which a single process can resume.
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints")) == ["3", "6"]
    resumed = subprocess.run([sys.executable, "-m", "train", "mlp", "--workdir", workdir, *args, "--config.steps=7"],
                             env=env_with_devices(4), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 6" in resumed.stdout


def test_a_signal_to_one_process_stops_every_process_after_the_same_step(tmp_path):
    """SIGTERM reaches only process 1: both agree, stop after one step, save it together, exit 0."""
    port = free_port()
    workdir = tmp_path / "run"
    args = [a for a in ARGS if not a.startswith(("--config.steps", "--config.ckpt_every"))]
    procs = [subprocess.Popen([sys.executable, "-m", "train", "mlp", "--workdir", str(workdir), *args,
                               "--config.steps=100000", "--config.ckpt_every=0", "--config.eval_every=0",
                               "--coordinator", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)],
                              env=env_with_devices(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and len(read_metrics(workdir)) >= 3):
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    try:
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            p.kill()
    stops = []
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        stops.append(int(out.split("stopped by SIGTERM after step ")[1].split(";")[0]))
    assert stops[0] == stops[1]
    assert sorted(os.listdir(workdir / "checkpoints")) == [str(stops[0])]
    assert read_metrics(workdir)[-1]["step"] == stops[0]
