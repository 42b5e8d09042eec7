"""Diffusion sampling speed: seconds per guided image of each `ddpm` sampler.

Every sampler is the task's own `generate` (one `lax.scan` over its steps, both guidance halves
in one batched call per step) on the same weights, classes and keys: DPM-Solver++(2M) SDE (the
default) and DDIM at each of `--steps`, and the ancestral sampler over every timestep. The solver's
second-order correction is a few elementwise operations per step, so the rows differ mostly in
the number of network calls.
The weights are the preset's initial ones: the work per image does not depend on their values
(what each sampler's samples score is in docs/images.md). Each figure is the median of
`--repeats` timed calls after a warm-up call; compile time is reported apart.

    python -m benchmarks.diffusion_sampling [--preset cpu] [--images 10] [--steps 50,100] [--no-full]
"""

import argparse
import os
import sys

DEFAULT_OUT = os.path.join("runs", "benchmarks", "diffusion_sampling.json")


def measure(preset: str, images: int, step_counts: list[int], full: bool, repeats: int, log=print) -> dict:
    import jax
    import jax.numpy as jnp

    from aigc_jax.benchmarks.presets import preset_config
    from aigc_jax.benchmarks.rl_throughput import timed_call
    from aigc_jax.tasks.ddpm import IMAGE_SIZE, NUM_CLASSES, DDPMTask

    config, why = preset_config(DDPMTask, preset, "jit", None)
    if config is None:
        raise SystemExit(f"error: {why}")
    init_task = DDPMTask(config)
    params = jax.jit(init_task.init)(jax.random.key(0), {"image": jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1))}).params
    labels = jnp.arange(images) % NUM_CLASSES
    keys = jax.random.split(jax.random.key(1), images)
    shape = {k: config[k] for k in ("patch", "channels", "blocks", "attention_at", "timesteps", "guidance", "eta", "dtype")}
    log(f"ddpm {preset} shape {shape}; {images} guided images per call; "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()})")
    samplers = [(sampler, steps) for steps in step_counts for sampler in ("dpmpp_2m_sde", "ddim")]
    samplers += [("ddpm", config.timesteps)] if full else []
    rows = []
    for sampler, steps in samplers:
        overrides = config.copy_and_resolve_references()
        overrides.sampler, overrides.sample_steps = sampler, steps if sampler != "ddpm" else config.sample_steps
        task = DDPMTask(overrides)
        compile_s, seconds = timed_call(lambda p, k, task=task: task.generate(p, labels, k), (params, keys), repeats)
        rows.append({"sampler": sampler, "steps": steps, "compile_s": compile_s, "seconds": seconds,
                     "seconds_per_image": seconds / images, "network_calls_per_image": (1 if config.guidance == 1.0 else 2) * steps})
        log(f"  {sampler:>12} {steps:>5} steps: {seconds / images:8.3f} s/image ({seconds:.1f} s per call, "
            f"compile {compile_s:.1f} s)")
    return {"command": "python -m benchmarks.diffusion_sampling " + " ".join(sys.argv[1:]), "preset": preset,
            "shape": shape, "images": images, "repeats": repeats, "device": jax.devices()[0].device_kind,
            "rows": rows}


def main(argv: list[str]) -> int:
    from aigc_jax.benchmarks.presets import PRESETS, default_preset

    p = argparse.ArgumentParser(prog="python -m benchmarks.diffusion_sampling", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, help="U-Net shape (default: gpu with an accelerator, else cpu)")
    p.add_argument("--images", type=int, default=10, help="guided images per call (default 10, one per class)")
    p.add_argument("--steps", default="50", help="comma-separated solver and DDIM step counts (default 50)")
    p.add_argument("--no-full", action="store_true", help="skip the ancestral sampler over every timestep")
    p.add_argument("--repeats", type=int, default=1, help="timed calls after the warm-up (default 1)")
    p.add_argument("--json", default=DEFAULT_OUT)
    args = p.parse_args(argv)
    try:
        step_counts = [int(s) for s in args.steps.split(",") if s]
    except ValueError:
        print(f"error: --steps {args.steps!r}: expected comma-separated integers", file=sys.stderr)
        return 2
    for name, value in (("--images", args.images), ("--repeats", args.repeats), *(("--steps", s) for s in step_counts)):
        if value < 1:
            print(f"error: {name} {value}: expected an integer >= 1", file=sys.stderr)
            return 2
    from aigc_jax.benchmarks import report
    from aigc_jax.cli import quiet_libraries

    quiet_libraries()
    doc = measure(args.preset or default_preset(), args.images, step_counts, not args.no_full, args.repeats)
    report.write_json(doc, args.json)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
