"""CycleGAN's networks (Zhu et al. 2017): a ResNet generator and a PatchGAN discriminator.

Both use instance normalisation (`nn.InstanceNorm`: per image and channel, no running statistics,
so nothing depends on the batch and every parallel mode computes the same). Images are [B, H, W, C]
in [-1, 1]; H and W must be multiples of 4 (the generator halves them twice), e.g. 28 or 32.
"""

import jax.numpy as jnp
from flax import linen as nn

from aigc_jax.models.conv_transpose import ConvTranspose  # nn.ConvTranspose with a fast kernel gradient


def reflect_pad(x, pad: int):
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convolutions with instance norm, added to the input."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = x
        for i in range(2):
            y = nn.Conv(self.features, (3, 3), padding="VALID", dtype=self.dtype)(reflect_pad(y, 1))
            y = nn.InstanceNorm(dtype=self.dtype)(y)
            if i == 0:
                y = nn.relu(y)
        return x + y


class ResNetGenerator(nn.Module):
    """c7s1-w, d2w, d4w, `blocks` x R4w, u2w, uw, c7s1-C, tanh (Johnson et al.'s layout)."""

    width: int = 32
    blocks: int = 6
    channels: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        norm = lambda y: nn.relu(nn.InstanceNorm(dtype=self.dtype)(y))
        y = norm(nn.Conv(self.width, (7, 7), padding="VALID", dtype=self.dtype)(reflect_pad(x, 3)))
        for mult in (2, 4):
            y = norm(nn.Conv(self.width * mult, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), dtype=self.dtype)(y))
        for _ in range(self.blocks):
            y = ResidualBlock(self.width * 4, dtype=self.dtype)(y)
        for mult in (2, 1):
            y = norm(ConvTranspose(self.width * mult, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype)(y))
        y = nn.Conv(self.channels, (7, 7), padding="VALID", dtype=self.dtype)(reflect_pad(y, 3))
        return jnp.tanh(y.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4x4 convolutions, `layers` of them with stride 2 (widths w, 2w, 4w, ...), one with
    stride 1, then a 1-channel map of real/fake scores, one per overlapping patch (LSGAN: no sigmoid).
    With layers=3 on 256x256 images this is the paper's 70x70 PatchGAN; 2 suits 28x28 digits."""

    width: int = 64
    layers: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        pad = ((1, 1), (1, 1))
        y = nn.leaky_relu(nn.Conv(self.width, (4, 4), strides=(2, 2), padding=pad, dtype=self.dtype)(x), 0.2)
        for i in range(1, self.layers + 1):
            stride = 2 if i < self.layers else 1
            y = nn.Conv(self.width * 2 ** min(i, 3), (4, 4), strides=(stride, stride), padding=pad, dtype=self.dtype)(y)
            y = nn.leaky_relu(nn.InstanceNorm(dtype=self.dtype)(y), 0.2)
        return nn.Conv(1, (4, 4), padding=pad, dtype=self.dtype)(y).astype(jnp.float32)
