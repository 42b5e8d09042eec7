"""Soak: kill -9 a training run at many random moments, resume each time, compare with a clean run.

Not part of the test suite (it runs for minutes). Usage:
    python tests/soak_kills.py --kills 50 [--family mlp] [--seed 0]
Prints kills survived / tried and exits non-zero if the final metrics differ from an uninterrupted run.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time


def rows(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--family", default="mlp")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = [f"--config.steps={args.steps}", "--config.log_every=1", "--config.eval_every=50",
              "--config.ckpt_every=7", "--config.sample_every=0", "--quiet"]
    root = tempfile.mkdtemp(prefix="soak_")
    cmd = lambda workdir: [sys.executable, "-m", "train", args.family, "--workdir", workdir, *config]  # noqa: E731

    clean = os.path.join(root, "clean")
    subprocess.run(cmd(clean), check=True, capture_output=True)
    killed_dir, rng, kills = os.path.join(root, "killed"), random.Random(args.seed), 0
    for attempt in range(args.kills):
        proc = subprocess.Popen(cmd(killed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = len(rows(killed_dir))
        while proc.poll() is None and len(rows(killed_dir)) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is not None:
            print(f"attempt {attempt + 1}: run finished before the kill; starting over")
            subprocess.run(["rm", "-rf", killed_dir], check=True)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        print(f"kill {kills}: at step {rows(killed_dir)[-1]['step'] if rows(killed_dir) else 0}", flush=True)
    subprocess.run(cmd(killed_dir), check=True, capture_output=True)
    same = rows(killed_dir) == rows(clean)
    print(f"kills survived: {kills if same else 0} / {kills}; final metrics identical: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
