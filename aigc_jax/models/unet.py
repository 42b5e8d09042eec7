"""The denoising U-Net of DDPM (Ho et al. 2020), small enough for 32x32 images, class-conditioned.

(noisy images [B, S, S, C], time in [0, 1] [B], class [B]) -> a prediction of the same shape as the
images (the noise for DDPM, the velocity for flow matching: the task decides what it means).

Read top to bottom:
- the time goes through a sinusoidal embedding and a two-layer MLP; the class through an embedding
  table with one extra row, `num_classes`, the "no class" token that classifier-free guidance
  trains by dropping labels; their sum conditions every residual block;
- down: per resolution, `blocks` residual blocks (GroupNorm, swish, 3x3 conv; GroupNorm scaled and
  shifted per channel by the conditioning (ADM's scale-shift norm), swish, 3x3 conv; a 1x1 conv on
  the skip when the width changes), self-attention
  after each block at the resolutions in `attention_at`, then a stride-2 conv (not after the last);
- middle: block, attention, block;
- up: per resolution, `blocks + 1` blocks, each fed the matching down activation concatenated
  (the U's skip connections), attention as on the way down, then nearest-neighbour upsampling and
  a 3x3 conv (not after the last);
- out: GroupNorm, swish, a zero-initialised 3x3 conv (the untrained net predicts zeros).
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.attention import dot_product_attention


def timestep_embedding(t, dim: int, max_period: float = 10_000.0):
    """t [B] in [0, 1] -> [B, dim]: sines and cosines of 1000 t at geometric frequencies."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = 1000.0 * t.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def group_norm(channels: int, dtype) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=math.gcd(channels, 8), dtype=dtype)


class ResBlock(nn.Module):
    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond):
        h = nn.Conv(self.features, (3, 3), dtype=self.dtype)(nn.swish(group_norm(x.shape[-1], self.dtype)(x)))
        scale, shift = jnp.split(nn.Dense(2 * self.features, dtype=self.dtype)(nn.swish(cond))[:, None, None, :], 2, -1)
        h = nn.swish(group_norm(self.features, self.dtype)(h) * (1.0 + scale) + shift)
        h = nn.Conv(self.features, (3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros)(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), dtype=self.dtype)(x)
        return x + h


class SelfAttention(nn.Module):
    """Every pixel attends to every pixel of its image (single head per 32 channels), residual."""

    head_dim: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        heads = max(1, c // self.head_dim)
        qkv = nn.DenseGeneral((3, heads, c // heads), dtype=self.dtype)(group_norm(c, self.dtype)(x).reshape(b, h * w, c))
        out = dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
        out = nn.DenseGeneral(c, axis=(-2, -1), dtype=self.dtype, kernel_init=nn.initializers.zeros)(out)
        return x + out.reshape(b, h, w, c)


class UNet(nn.Module):
    channels: Sequence[int] = (32, 64, 64)  # widths from the finest resolution down, halving each time
    blocks: int = 2  # residual blocks per resolution on the way down (one more on the way up)
    attention_at: Sequence[int] = (8,)  # grid sizes (after patching) with self-attention
    num_classes: int = 10  # the extra embedding row num_classes is "no class"
    out_channels: int = 1
    patch: int = 1  # pixels per side folded into channels first (space-to-depth) and unfolded last
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x, t, label):
        b, size, _, c = x.shape
        p = self.patch
        x = x.reshape(b, size // p, p, size // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, size // p, size // p, p * p * c)
        width = 4 * self.channels[0]
        cond = nn.Dense(width, dtype=self.dtype)(timestep_embedding(t, self.channels[0]))
        cond = nn.Dense(width, dtype=self.dtype)(nn.swish(cond))
        # N(0, 1) class vectors (PyTorch's nn.Embedding, as in ADM): on the scale of the time features, so the
        # class steers the samples early (Flax's default, std 1/sqrt(width), left it ~10x weaker).
        embed = nn.Embed(self.num_classes + 1, width, embedding_init=nn.initializers.normal(1.0), dtype=self.dtype)
        cond = cond + embed(label)

        h = nn.Conv(self.channels[0], (3, 3), dtype=self.dtype)(x.astype(self.dtype))
        skips = [h]
        for level, features in enumerate(self.channels):
            for _ in range(self.blocks):
                h = self._attend(ResBlock(features, self.dtype)(h, cond))
                skips.append(h)
            if level < len(self.channels) - 1:
                h = nn.Conv(features, (3, 3), strides=(2, 2), dtype=self.dtype)(h)
                skips.append(h)

        h = ResBlock(self.channels[-1], self.dtype)(h, cond)
        h = SelfAttention(dtype=self.dtype)(h)
        h = ResBlock(self.channels[-1], self.dtype)(h, cond)

        for level, features in reversed(list(enumerate(self.channels))):
            for _ in range(self.blocks + 1):
                h = self._attend(ResBlock(features, self.dtype)(jnp.concatenate([h, skips.pop()], -1), cond))
            if level > 0:
                b, s, _, c = h.shape
                h = jnp.broadcast_to(h[:, :, None, :, None], (b, s, 2, s, 2, c)).reshape(b, 2 * s, 2 * s, c)
                h = nn.Conv(features, (3, 3), dtype=self.dtype)(h)

        h = nn.swish(group_norm(h.shape[-1], self.dtype)(h))
        out = nn.Conv(p * p * self.out_channels, (3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros)(h)
        out = out.reshape(b, size // p, size // p, p, p, self.out_channels).transpose(0, 1, 3, 2, 4, 5)
        return out.reshape(b, size, size, self.out_channels).astype(jnp.float32)

    def _attend(self, h):
        return SelfAttention(dtype=self.dtype)(h) if h.shape[1] in self.attention_at else h
