"""The MLP GAN of seeds 000-003: a generator from noise to a flat image, and a discriminator."""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
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
    """image -> Dense/LeakyReLU(0.2) ... -> Dense(1): one real-vs-fake logit per image."""

    hidden: Sequence[int] = (512, 256)
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(x), 0.2)
        return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
