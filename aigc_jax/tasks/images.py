"""Helpers shared by the image-generation tasks."""

import jax
import jax.numpy as jnp

from aigc_jax.eval.frechet import frechet_from_sums

POOL = 4  # pixel statistics are taken on 4x4-average-pooled images (28x28 -> 7x7 = 49 features)


def pooled_pixels(images: jax.Array) -> jax.Array:
    """[B, H, W, 1] in [0, 1] -> [B, (H/4)*(W/4)] features for a pixel-space Fréchet distance."""
    b, h, w, c = images.shape
    pooled = images.reshape(b, h // POOL, POOL, w // POOL, POOL, c).mean(axis=(2, 4))
    return pooled.reshape(b, -1)


def feature_sums(name: str, features: jax.Array, mask: jax.Array) -> dict:
    """Masked sums of features and of their outer products, for `frechet_from_sums`."""
    weighted = features * mask[:, None]
    return {f"{name}_sum": weighted.sum(0), f"{name}_outer": weighted.T @ features}


def pixel_fd(means: dict) -> float:
    return frechet_from_sums(means, "fake", "real")


def split_keys(keys: jax.Array, n: int = 2):
    """Per-example keys [B] -> n independent per-example key arrays [B] each."""
    split = jax.vmap(lambda k: jax.random.split(k, n))(keys)
    return tuple(split[:, i] for i in range(n))


def to_unit(images: jax.Array) -> jax.Array:
    """[-1, 1] -> [0, 1]."""
    return jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)
