"""Soak: kill -9 a training run at many random moments, resume each time, compare with a clean run.

Not part of the test suite (it runs for minutes). Usage:
    python tests/soak_kills.py --kills 50 [--family mlp_gan] [--steps 4000] [--seed 0]
Every other kill waits for a checkpoint save to be under way (orbax's temporary folder exists) and
lands in it. Prints kills survived / tried, how many landed during a save, and exits non-zero if
the resumed run's metrics differ from an uninterrupted run's or a kill left a damaged checkpoint.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def rows(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:  # a line the run is writing right now
                pass
    return out


def saving(workdir) -> bool:
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and any("tmp" in name for name in os.listdir(ckpt))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--family", default="mlp_gan")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = [f"--config.steps={args.steps}", "--config.log_every=1", "--config.eval_every=500",
              "--config.ckpt_every=7", "--config.sample_every=0", "--quiet"]
    root = tempfile.mkdtemp(prefix="soak_")
    cmd = lambda workdir: [sys.executable, "-m", "train", args.family, "--workdir", workdir, *config]  # noqa: E731

    started = time.time()
    clean = os.path.join(root, "clean")
    subprocess.run(cmd(clean), check=True, capture_output=True)
    killed_dir, rng, kills, in_save = os.path.join(root, "killed"), random.Random(args.seed), 0, 0
    while kills < args.kills:
        proc = subprocess.Popen(cmd(killed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = len(rows(killed_dir))
        while proc.poll() is None and len(rows(killed_dir)) <= before:
            time.sleep(0.01)
        if kills % 2:  # land in a save: wait for orbax's temporary folder
            deadline = time.time() + 10
            while proc.poll() is None and not saving(killed_dir) and time.time() < deadline:
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is not None:
            print("the run finished before the kill: use more --steps", file=sys.stderr)
            sys.exit(2)
        during_save = saving(killed_dir)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        in_save += during_save
        print(f"kill {kills}: at step {rows(killed_dir)[-1]['step'] if rows(killed_dir) else 0}"
              f"{' (during a save)' if during_save else ''}", flush=True)
    subprocess.run(cmd(killed_dir), check=True, capture_output=True)
    damaged = os.path.isdir(os.path.join(killed_dir, "checkpoints", "damaged"))
    same = rows(killed_dir) == rows(clean) and not damaged
    print(f"kills survived: {kills if same else 0} / {kills} ({in_save} during a save); final metrics identical: "
          f"{rows(killed_dir) == rows(clean)}; damaged checkpoints: {damaged}; {time.time() - started:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
