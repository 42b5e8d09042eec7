"""`python -m benchmarks.input_throughput`: does the input pipeline keep up with the step?

For each image family at its `cpu` benchmark preset, on a dataset read from disk (default
`synthetic_images`, streamed as a `RecordSplit`), three rates in examples per second on this host:

- `input`: the read-ahead stream alone (`engine/input_pipeline.py`: this host's slice of batch s,
  read from array_record and decoded, in the read-ahead thread), with no step running;
- `step`: the compiled train step alone, on one batch already on the device;
- `train`: `Run.advance()` as training runs it, stream and step together.

`input / step` >= 2 means the data side has room to spare; `train` near `step` means the stream
hides behind the step. Writes runs/benchmarks/input.json and prints a markdown table.
"""

import argparse
import json
import os
import sys
import time

import jax

IMAGE_FAMILIES = ("mlp_gan", "dcgan", "stylegan", "vae", "vae_gan", "conv_vae", "cnn", "mlp")


def rate(fn, batch_size: int, seconds: float, warmup: int = 3) -> float:
    """Examples per second of `fn()` (one batch per call), after `warmup` calls."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn()
        n += 1
    return n * batch_size / (time.perf_counter() - start)


def measure_family(name: str, dataset: str, num_examples: int, seconds: float) -> dict:
    from aigc_jax.benchmarks.presets import preset_config
    from aigc_jax.engine.input_pipeline import prefetched
    from aigc_jax.engine.run import Run
    from aigc_jax.tasks import registry

    cls = registry.get(name)
    config, why = preset_config(cls, "cpu", "jit", None)
    if config is None:
        return {"family": name, "status": "skipped", "reason": why}
    config.dataset, config.num_examples, config.in_memory_mb = dataset, num_examples, 0  # the stream is measured
    if "judge_metrics" in config:
        config.judge_metrics = False
    run = Run(cls(config), mode="jit")
    b = config.batch_size // jax.process_count()
    stream = prefetched(run.host_batch, 0)
    input_eps = rate(lambda: next(stream), b, seconds)
    train_eps = rate(lambda: jax.block_until_ready(run.advance()), b, seconds)
    batch = run.compiled.place_batch(run.host_batch(0))
    state, rng = run.state, jax.random.key(0)  # the step donates the state: run's is not used again

    def one_step():
        nonlocal state
        state, metrics = run.compiled.train_step(state, batch, rng)
        jax.block_until_ready(metrics)

    step_eps = rate(one_step, b, seconds)
    return {"family": name, "status": "ok", "batch_size": config.batch_size, "dataset": dataset,
            "num_examples": run.num_train, "streamed": type(run.data.train).__name__ == "RecordSplit",
            "input_examples_per_s": input_eps, "step_examples_per_s": step_eps,
            "train_examples_per_s": train_eps, "input_over_step": input_eps / step_eps}


def markdown(rows: list[dict]) -> str:
    lines = ["| family | batch | input ex/s | step ex/s | train ex/s | input / step |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['family']} | - | - | - | - | {r['status']}: {r['reason']} |")
            continue
        lines.append(f"| {r['family']} | {r['batch_size']} | {r['input_examples_per_s']:.0f} | "
                     f"{r['step_examples_per_s']:.0f} | {r['train_examples_per_s']:.0f} | {r['input_over_step']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from aigc_jax.cli import quiet_libraries
    from aigc_jax.errors import UserError

    p = argparse.ArgumentParser(prog="python -m benchmarks.input_throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default=",".join(IMAGE_FAMILIES), help="comma-separated image families")
    p.add_argument("--dataset", default="synthetic_images", help="an image dataset on disk (default synthetic_images)")
    p.add_argument("--num-examples", type=int, default=10_000, help="size of synthetic_images (default 10000)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per rate (default 3)")
    p.add_argument("--json", default=os.path.join("runs", "benchmarks", "input.json"))
    args = p.parse_args(argv)
    quiet_libraries()
    rows = []
    try:
        for name in [f.strip() for f in args.families.split(",") if f.strip()]:
            rows.append(measure_family(name, args.dataset, args.num_examples, args.seconds))
            r = rows[-1]
            print(f"{name}: " + (f"input {r['input_examples_per_s']:.0f} ex/s, step {r['step_examples_per_s']:.0f}, "
                                 f"train {r['train_examples_per_s']:.0f}" if r["status"] == "ok" else r["reason"]),
                  flush=True)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"command": "python -m benchmarks.input_throughput " + " ".join(argv), "rows": rows}, f, indent=2)
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
