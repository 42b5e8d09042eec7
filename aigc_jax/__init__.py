"""aigc-jax: pure Flax models and pure train/eval/sample functions for AI-generated content."""

__version__ = "0.1.0"
