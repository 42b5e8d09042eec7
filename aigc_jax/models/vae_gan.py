"""The VAE/GAN discriminator (Larsen et al. 2016), scaled to 28x28 digits, without BatchNorm.

Conv 5x5 s2 -> LeakyReLU(0.2) per channel count, the last one LayerNormed: that last map is
`Dis_l`, the feature space of the VAE/GAN's reconstruction likelihood; then Dense -> LeakyReLU ->
Dense(1) real-vs-fake logit. LayerNorm (instead of the paper's BatchNorm) keeps the features'
scale per example fixed, so the feature-space likelihood cannot grow or shrink with D's weights,
and it needs no batch statistics in any parallel mode. The encoder and decoder are the shared
convolutional ones (models/autoencoder.py).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class FeatureDiscriminator(nn.Module):
    """image [B, H, W, C] in [-1, 1] -> (logit [B], Dis_l features [B, F])."""

    channels: Sequence[int] = (32, 64)
    hidden: int = 256
    feature_layer: int = -1  # which conv layer's output is Dis_l (-1: the last)
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x):
        x = x.astype(self.dtype)
        outputs = []
        for i, ch in enumerate(self.channels):
            x = nn.Conv(ch, (5, 5), strides=2, dtype=self.dtype)(x)
            if i > 0:  # normalised as DCGAN's D is, all but the first layer; per example, not per batch
                x = nn.LayerNorm(reduction_axes=(-3, -2, -1), dtype=self.dtype)(x)
            x = nn.leaky_relu(x, 0.2)
            outputs.append(x)
        features = outputs[self.feature_layer]
        h = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape((x.shape[0], -1))), 0.2)
        logit = nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)
        return logit, features.reshape((x.shape[0], -1)).astype(jnp.float32)
