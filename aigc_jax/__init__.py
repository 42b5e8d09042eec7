"""aigc-jax: pure Flax models and pure train/eval/sample functions for AI-generated content."""

# First, before anything can start a JAX backend: XLA reads XLA_FLAGS only once, at that moment.
from aigc_jax.engine.xla_flags import apply_default_xla_flags as _apply_default_xla_flags

_apply_default_xla_flags()

__version__ = "0.1.0"
