"""Benchmark shapes: a family's config at a preset (tiny | cpu | gpu), dtype and parallel mode.

A family declares its shapes in `Task.benchmark_presets` (config overrides per preset); a family
without an entry for the asked preset is skipped with that reason, not guessed at.
"""

import jax
import ml_collections

from aigc_jax.engine.config import DTYPES, validate

PRESETS = ("tiny", "cpu", "gpu")


def default_preset() -> str:
    """`gpu` when JAX sees an accelerator, else `cpu`."""
    return "cpu" if jax.default_backend() == "cpu" else "gpu"


def preset_config(cls, preset: str, mode: str, dtype: str | None) -> tuple[ml_collections.ConfigDict | None, str]:
    """(config, "") for `cls` at `preset`, or (None, why it cannot run there).

    `dtype=None` keeps the preset's own dtype (float32 unless the preset says otherwise).
    """
    overrides = cls.benchmark_presets.get(preset)
    if overrides is None:
        return None, f"no {preset!r} benchmark preset (has: {', '.join(cls.benchmark_presets) or 'none'})"
    config = cls.default_config()
    config.family = cls.name
    unknown = sorted(set(overrides) - set(config.keys()))
    if unknown:
        return None, f"preset {preset!r} sets unknown config keys {unknown}"
    for key, value in overrides.items():
        config[key] = tuple(value) if isinstance(value, list) else value
    config.parallel = mode
    if dtype is not None:
        if "dtype" not in config:
            return None, f"config has no 'dtype' key, so --dtype {dtype} cannot be applied"
        config.dtype = dtype
    if config.get("dtype", "float32") not in DTYPES:
        return None, f"dtype {config.dtype!r} is not one of {', '.join(DTYPES)}"
    validate(config, cls.config_ranges, cls.config_choices)
    return config, ""
