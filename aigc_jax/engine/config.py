"""Run configuration: the keys every family shares, CLI overrides and validation.

Configs are `ml_collections.ConfigDict`s, as in the Flax examples. A family's `default_config()`
starts from `base_config()` and adds its own keys. Every value that reaches the engine has passed
`validate`, so bad input fails here with one line instead of deep inside JAX.
"""

import math

import ml_collections

from aigc_jax.errors import UserError

PARALLEL_MODES = ("jit", "sharded", "shard_map", "pmap")

# key -> (lowest allowed, highest allowed); None means unbounded.
RANGES = {
    "steps": (1, None),
    "batch_size": (1, None),
    "eval_batch_size": (1, None),
    "learning_rate": (0.0, None),
    "seed": (0, 2**31 - 1),
    "log_every": (1, None),
    "eval_every": (0, None),
    "ckpt_every": (0, None),
    "sample_every": (0, None),
    "keep_checkpoints": (1, None),
    "l1": (0.0, None),
    "l2": (0.0, None),
    "grad_accum": (1, None),
    "ema_decay": (0.0, 1.0),
    "num_examples": (0, None),
    "in_memory_mb": (0.0, None),
}
DTYPES = ("float32", "bfloat16")
CHOICES = {"parallel": PARALLEL_MODES, "dtype": DTYPES, "nan_policy": ("stop", "skip")}
POSITIVE = {"learning_rate"}  # strictly greater than the lower bound
# Keys that say only how long or how often, or how the same numbers are computed: a resumed run
# may change them (the numbers it trains on stay those of the run it continues). The parallel
# modes compute the same step (equal to float rounding: tests/test_parallel_modes.py). Every other
# key is fixed for the life of a workdir. A family adds its own (sampling-only keys) with
# `Task.resumable_keys`.
RESUMABLE = ("steps", "log_every", "eval_every", "ckpt_every", "sample_every", "keep_checkpoints",
             "nan_policy", "parallel", "eval_batch_size", "data_dir", "in_memory_mb")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = ""
    c.steps = 1000  # train steps (one batch each; with grad_accum, micro-batches)
    c.batch_size = 64  # examples per step, over all devices
    c.eval_batch_size = 256  # examples per evaluation batch (the last one padded and masked)
    c.learning_rate = 1e-3  # the optimizer's (peak) step size
    c.seed = 0  # every key of the run (init, batches, noise, eval, samples) derives from it
    c.parallel = "sharded"  # jit | sharded | shard_map | pmap
    c.dtype = "float32"  # compute dtype of the modules: float32 | bfloat16 (parameters stay float32)
    c.dataset = "digits"  # the embedded default, synthetic_images (generated, colour), or a TFDS catalog name
    c.data_dir = ""  # TFDS data dir; "" = $TFDS_DATA_DIR or ~/.cache/aigc_jax/tfds
    c.num_examples = 0  # train examples of a generated dataset (synthetic_images); 0 = its default
    c.in_memory_mb = 1024.0  # train splits up to this size on disk are read whole; larger ones batch by batch
    c.log_every = 50  # steps between train-metric rows in metrics.jsonl
    c.eval_every = 500  # steps between evaluations on the held-out split; 0 = only at the end
    c.ckpt_every = 500  # steps between checkpoints; 0 = only at the end
    c.sample_every = 500  # steps between sample files; 0 = only at the end
    c.keep_checkpoints = 3  # newest checkpoints kept in WORKDIR/checkpoints
    c.nan_policy = "stop"  # a NaN/Inf update: stop (keep the last good checkpoint) | skip it
    # Regularisation of every TrainState's weights (engine/state.py `regularise`): L1 as a loss term
    # l1 * sum|w|, L2 as decoupled (AdamW-style) decay w -= learning_rate * l2 * w per update.
    c.l1 = 0.0  # L1 penalty on weight matrices, added to the gradients
    c.l2 = 0.0  # decoupled weight decay: w -= learning_rate * l2 * w per update
    # Every family (engine/state.py `engine_options`): average the gradients of grad_accum steps
    # into one update, and keep an EMA of the weights for evaluation and samples (0 = none).
    c.grad_accum = 1  # average the gradients of this many steps into one update
    c.ema_decay = 0.0  # EMA of the weights for evaluation and samples; 0 = none
    return c


def _parse_value(key: str, text: str, current):
    """Parse `text` into the type of the current value of `key`."""
    kind = type(current)
    try:
        if kind is bool:
            low = text.lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError
            return low in ("true", "1")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if kind is tuple:
            item = type(current[0]) if current else int
            return tuple(item(v) for v in text.split(",") if v)
    except ValueError:
        pass
    names = {bool: "true or false", int: "an integer", float: "a number", tuple: "a comma-separated list"}
    raise UserError(f"--config.{key}={text!r}: expected {names.get(kind, kind.__name__)}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> ml_collections.ConfigDict:
    """Return a copy of `config` with `{key: text}` overrides parsed and applied."""
    config = ml_collections.ConfigDict(config.to_dict())
    for key, text in overrides.items():
        if key not in config or key == "family":
            known = ", ".join(k for k in sorted(config.keys()) if k != "family")
            raise UserError(f"unknown config key {key!r} for family {config.family!r}; known keys: {known}")
        config[key] = _parse_value(key, text, config[key])
    return config


def validate(config: ml_collections.ConfigDict, extra_ranges: dict | None = None,
             extra_choices: dict | None = None) -> None:
    """Raise UserError naming the first value outside its allowed range or choices."""
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"config.{key}={value!r}: expected a finite number")
    ranges = {**RANGES, **(extra_ranges or {})}
    for key, (low, high) in ranges.items():
        if key not in config:
            continue
        value = config[key]
        bad_low = low is not None and (value <= low if key in POSITIVE else value < low)
        bad_high = high is not None and value > high
        if bad_low or bad_high:
            if key in POSITIVE:
                expected = f"a number > {low}"
            elif high is None:
                expected = f"a value >= {low}"
            else:
                expected = f"a value in [{low}, {high}]"
            raise UserError(f"config.{key}={value!r}: expected {expected}")
    for key, value in config.items():
        if isinstance(value, tuple) and any(isinstance(v, int) and v < 1 for v in value):
            raise UserError(f"config.{key}={value!r}: expected positive sizes")
    for key, allowed in {**CHOICES, **(extra_choices or {})}.items():
        if key in config and config[key] not in allowed:
            raise UserError(f"config.{key}={config[key]!r}: expected one of {', '.join(allowed)}")


def changed_keys(saved: dict, given: dict, resumable=()) -> list[str]:
    """`key: saved -> given` for every key both configs hold whose value differs, except the keys
    a resumed run may change (RESUMABLE and `resumable`)."""
    free = set(RESUMABLE) | set(resumable)
    out = []
    for key in sorted(set(saved) & set(given) - free):
        a, b = (tuple(v) if isinstance(v, list) else v for v in (saved[key], given[key]))  # JSON has lists
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out
