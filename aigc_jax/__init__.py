"""aigc-jax: pure Flax models and pure train/eval/sample functions for AI-generated content."""

# First, before anything can start a JAX backend: XLA reads XLA_FLAGS only once, at that moment.
from aigc_jax.engine.host_memory import keep_large_buffers as _keep_large_buffers
from aigc_jax.engine.xla_flags import apply_default_xla_flags as _apply_default_xla_flags

_apply_default_xla_flags()
_keep_large_buffers()  # XLA:CPU's per-step temporaries stay mapped (engine/host_memory.py)

__version__ = "0.1.0"

_API = ("Run", "Task", "base_config", "build", "create_train_state", "families", "load", "register", "train")


def __getattr__(name):
    # The API on first use: `import aigc_jax` stays light (no family is imported until one is needed).
    if name in _API:
        from aigc_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'aigc_jax' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
