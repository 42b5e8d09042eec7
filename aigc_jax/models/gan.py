"""The MLP GAN of seeds 000-003: a generator from noise to a flat image, and a discriminator."""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPGenerator(nn.Module):
    """z [B, latent] -> Dense/ReLU ... -> Dense -> tanh -> image [B, H, W, C] in [-1, 1]."""

    hidden: Sequence[int] = (256, 512)
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, z):
        x = z
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
        x = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(x)
        return jnp.tanh(x).astype(jnp.float32).reshape((z.shape[0], *self.image_shape))


class MLPDiscriminator(nn.Module):
    """image -> Dense/LeakyReLU(0.2)/dropout ... -> Dense(1): one real-vs-fake logit per image.

    Dropout (rate `dropout`) is drawn from per-example keys [B] when they are given (training), so
    every parallel mode drops the same units; without keys (evaluation) nothing is dropped."""

    hidden: Sequence[int] = (512, 256)
    dropout: float = 0.0
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x, dropout_keys=None):
        x = x.reshape((x.shape[0], -1))
        for layer, width in enumerate(self.hidden):
            x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(x), 0.2)
            if self.dropout > 0.0 and dropout_keys is not None:
                keep = jax.vmap(lambda k: jax.random.bernoulli(jax.random.fold_in(k, layer), 1.0 - self.dropout,
                                                               (width,)))(dropout_keys)
                x = jnp.where(keep, x / (1.0 - self.dropout), 0.0).astype(x.dtype)
        return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
