"""GPT sampling speed: the key/value cache against recomputing the whole context for every byte.

Both decoders run inside the same compiled `aigc_jax.decoding.sample` loop (one `lax.scan`, no
Python per token) on the same weights, prompt and keys, so they produce the same bytes (tests
check it) and differ only in the work per new byte: one position through the model with the
cache, the whole context (prompt + every byte so far, in a fixed-size buffer of prompt + new
bytes, causally masked) without it. Each figure is the median of `--repeats` timed calls after a
warm-up call; compile time is reported apart.

    python -m benchmarks.sampling [--preset cpu] [--tokens 256] [--prompt-bytes 16] [--batch 1,8]
"""

import argparse
import os
import sys

DEFAULT_OUT = os.path.join("runs", "benchmarks", "sampling.json")


def measure(preset: str, tokens: int, prompt_bytes: int, batches: list[int], repeats: int, log=print) -> dict:
    import jax
    import jax.numpy as jnp

    from aigc_jax import decoding
    from aigc_jax.engine.run import initial_state, root_keys
    from aigc_jax.benchmarks.rl_throughput import timed_call
    from aigc_jax.tasks.gpt import GPTTask
    from aigc_jax.benchmarks.presets import preset_config

    config, why = preset_config(GPTTask, preset, "jit", None)
    if config is None:
        raise SystemExit(f"error: {why}")
    config.seq_len = prompt_bytes + tokens  # the context holds the prompt and every new byte
    config.sample_tokens = tokens
    data = GPTTask(config).load_data()
    task = GPTTask(config).bind(data)
    state = initial_state(task, data, root_keys(config.seed)["init"])
    shape = {k: config[k] for k in ("width", "layers", "heads", "seq_len", "vocab_size", "dtype")}
    log(f"gpt {preset} shape {shape}; {prompt_bytes}-byte prompt + {tokens} new bytes; "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()})")
    rows = []
    for batch in batches:
        prompt = jnp.asarray(data.test["tokens"][:batch, :prompt_bytes])
        row = {"batch": batch}
        for name, make in (("kv_cache", task.decoder), ("recompute", task.recompute_decoder)):
            def run(state, rng, make=make, batch=batch):
                return decoding.sample(*make(state, batch), prompt, tokens, rng, config.temperature,
                                       config.top_k, config.top_p)

            compile_s, seconds = timed_call(run, (state, jax.random.key(0)), repeats)
            row[name] = {"compile_s": compile_s, "seconds": seconds, "tokens_per_s": batch * tokens / seconds}
        row["speedup"] = row["kv_cache"]["tokens_per_s"] / row["recompute"]["tokens_per_s"]
        log(f"  batch {batch:>3}: KV cache {row['kv_cache']['tokens_per_s']:>10,.0f} tokens/s, recompute "
            f"{row['recompute']['tokens_per_s']:>10,.0f} tokens/s: cache {row['speedup']:.1f}x faster")
        rows.append(row)
    return {"command": "python -m benchmarks.sampling " + " ".join(sys.argv[1:]), "preset": preset,
            "shape": shape, "prompt_bytes": prompt_bytes, "new_tokens": tokens, "repeats": repeats,
            "device": jax.devices()[0].device_kind, "rows": rows}


def main(argv: list[str]) -> int:
    from aigc_jax.benchmarks.presets import PRESETS, default_preset

    p = argparse.ArgumentParser(prog="python -m benchmarks.sampling", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, help="GPT shape (default: gpu with an accelerator, else cpu)")
    p.add_argument("--tokens", type=int, default=256, help="new bytes per sequence (default 256)")
    p.add_argument("--prompt-bytes", type=int, default=16)
    p.add_argument("--batch", default="1,8", help="comma-separated sequences per call (default 1,8)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=DEFAULT_OUT)
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",") if b]
    for name, value in (("--tokens", args.tokens), ("--prompt-bytes", args.prompt_bytes),
                        ("--repeats", args.repeats), *(("--batch", b) for b in batches)):
        if value < 1:
            print(f"error: {name} {value}: expected an integer >= 1", file=sys.stderr)
            return 2
    from aigc_jax.benchmarks import report
    from aigc_jax.cli import quiet_libraries

    quiet_libraries()
    doc = measure(args.preset or default_preset(), args.tokens, args.prompt_bytes, batches, args.repeats)
    report.write_json(doc, args.json)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
