"""A lite StyleGAN2 (Karras et al. 2019, 2020) for small square images.

Generator: a mapping network z -> w (pixel-normalised z, Dense/LeakyReLU layers at a 0.01 learning-
rate multiplier), then a synthesis network from a learned 4x4 constant: at each resolution
modulated/demodulated 3x3 convolutions with per-pixel noise (learned strength), nearest 2x
upsampling, and a "skip" toRGB whose outputs are upsampled and summed. Every layer gets its own w
(`num_ws` of them, StyleGAN2's indexing: a resolution's toRGB shares its w with the next
resolution's first convolution), which is what style mixing swaps.
Discriminator: residual blocks with 2x average pooling, a Dense head, one logit per image.
All weights use the equalised learning rate: stored N(0, 1) / lr_mul and scaled at run time.
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

SQRT2 = math.sqrt(2.0)
DIMS = ("NHWC", "HWIO", "NHWC")


def lrelu(x):
    """LeakyReLU(0.2) with StyleGAN's gain sqrt(2), which keeps activations at unit scale."""
    return nn.leaky_relu(x, 0.2) * SQRT2


def normal_init(scale: float):
    return lambda key, shape: jax.random.normal(key, shape) * scale


class EqualDense(nn.Module):
    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", normal_init(1.0 / self.lr_mul), (x.shape[-1], self.features))
        bias = self.param("bias", lambda k, s: jnp.full(s, self.bias_init / self.lr_mul, jnp.float32), (self.features,))
        scale = self.lr_mul / math.sqrt(x.shape[-1])
        return x.astype(self.dtype) @ (kernel * scale).astype(self.dtype) + (bias * self.lr_mul).astype(self.dtype)


class EqualConv(nn.Module):
    features: int
    kernel: int = 3
    use_bias: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c_in = x.shape[-1]
        weight = self.param("kernel", normal_init(1.0), (self.kernel, self.kernel, c_in, self.features))
        weight = weight * (1.0 / math.sqrt(self.kernel * self.kernel * c_in))
        y = lax.conv_general_dilated(x.astype(self.dtype), weight.astype(self.dtype), (1, 1), "SAME",
                                     dimension_numbers=DIMS)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y


class ModulatedConv(nn.Module):
    """StyleGAN2's weight modulation and demodulation, computed without per-example kernels: scaling
    the input channels by the style and the output channels by the demodulation factor is the same
    linear map as convolving with the modulated, demodulated kernel, and uses one shared kernel."""

    features: int
    kernel: int = 3
    demodulate: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, w):
        c_in = x.shape[-1]
        style = EqualDense(c_in, bias_init=1.0, name="affine")(w).astype(jnp.float32)  # [B, c_in]
        weight = self.param("kernel", normal_init(1.0), (self.kernel, self.kernel, c_in, self.features))
        weight = weight * (1.0 / math.sqrt(self.kernel * self.kernel * c_in))
        x = x * style[:, None, None, :].astype(x.dtype)
        y = lax.conv_general_dilated(x.astype(self.dtype), weight.astype(self.dtype), (1, 1), "SAME",
                                     dimension_numbers=DIMS)
        if self.demodulate:  # 1 / ||style * weight|| per example and output channel
            demod = lax.rsqrt(jnp.square(style) @ jnp.square(weight).sum((0, 1)) + 1e-8)  # [B, c_out]
            y = y * demod[:, None, None, :].astype(y.dtype)
        return y


class StyledConv(nn.Module):
    """Modulated 3x3 conv, + per-pixel noise times a learned strength, + bias, LeakyReLU."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, w, noise):
        y = ModulatedConv(self.features, 3, dtype=self.dtype, name="conv")(x, w)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = y.astype(jnp.float32) + strength * noise + bias
        return lrelu(y)


class ToRGB(nn.Module):
    channels: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, w):
        y = ModulatedConv(self.channels, 1, demodulate=False, dtype=self.dtype, name="conv")(x, w)
        return y.astype(jnp.float32) + self.param("bias", nn.initializers.zeros, (self.channels,))


def upsample2x(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def layer_noise(noise_keys: jax.Array, layer: int, size: int) -> jax.Array:
    """Per-example N(0, 1) noise [B, size, size, 1] for synthesis layer `layer`."""
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, layer), (size, size, 1)))(noise_keys)


class Mapping(nn.Module):
    w_dim: int
    layers: int
    lr_mul: float = 0.01
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        x = z * lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
        for i in range(self.layers):
            x = lrelu(EqualDense(self.w_dim, lr_mul=self.lr_mul, dtype=self.dtype, name=f"dense{i}")(x))
        return x.astype(jnp.float32)


class Synthesis(nn.Module):
    """ws [B, num_ws, w_dim] (+ per-example noise keys [B]) -> images [B, S, S, C] (unbounded, ~[-1, 1])."""

    channels: Sequence[int]  # per resolution 4, 8, 16, ...
    image_channels: int = 1
    dtype: Any = jnp.float32

    @property
    def num_ws(self) -> int:
        return 2 * len(self.channels)

    @nn.compact
    def __call__(self, ws, noise_keys):
        b = ws.shape[0]
        const = self.param("const", normal_init(1.0), (4, 4, self.channels[0]))
        x = jnp.broadcast_to(const, (b, *const.shape))
        x = StyledConv(self.channels[0], self.dtype, name="conv4")(x, ws[:, 0], layer_noise(noise_keys, 0, 4))
        rgb = ToRGB(self.image_channels, self.dtype, name="rgb4")(x, ws[:, 1])
        layer = 1
        for i, width in enumerate(self.channels[1:], start=1):
            size = 4 * 2**i
            x = upsample2x(x)
            x = StyledConv(width, self.dtype, name=f"conv{size}a")(x, ws[:, 2 * i - 1], layer_noise(noise_keys, layer, size))
            x = StyledConv(width, self.dtype, name=f"conv{size}b")(x, ws[:, 2 * i], layer_noise(noise_keys, layer + 1, size))
            layer += 2
            rgb = upsample2x(rgb) + ToRGB(self.image_channels, self.dtype, name=f"rgb{size}")(x, ws[:, 2 * i + 1])
        return rgb


class StyleGenerator(nn.Module):
    """`map(z)` -> w; `synthesize(ws, noise_keys)` -> images; `__call__(z, noise_keys)` both (no mixing)."""

    channels: Sequence[int] = (64, 64, 32, 16)
    w_dim: int = 64
    mapping_layers: int = 4
    image_channels: int = 1
    dtype: Any = jnp.float32

    def setup(self):
        self.mapping = Mapping(self.w_dim, self.mapping_layers, dtype=self.dtype)
        self.synthesis = Synthesis(tuple(self.channels), self.image_channels, self.dtype)

    @property
    def num_ws(self) -> int:
        return 2 * len(self.channels)

    def map(self, z):
        return self.mapping(z)

    def synthesize(self, ws, noise_keys):
        return self.synthesis(ws, noise_keys)

    def __call__(self, z, noise_keys):
        w = self.map(z)
        return self.synthesize(jnp.repeat(w[:, None], self.num_ws, axis=1), noise_keys)


class StyleDiscriminator(nn.Module):
    """image [B, S, S, C] -> fromRGB -> residual blocks (conv, conv, 2x pool; 1x1 skip) to 4x4 ->
    conv, Dense, Dense(1): one logit per image. No minibatch-stddev layer: it would couple the
    examples of a batch, so the parallel modes (which split the batch) would compute different numbers."""

    channels: Sequence[int] = (16, 32, 64, 64)  # per resolution S, S/2, ..., 4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = lrelu(EqualConv(self.channels[0], 1, dtype=self.dtype, name="from_rgb")(x).astype(jnp.float32))
        for i, width in enumerate(self.channels[1:]):
            skip = EqualConv(width, 1, use_bias=False, dtype=self.dtype, name=f"skip{i}")(downsample2x(x))
            y = lrelu(EqualConv(x.shape[-1], 3, dtype=self.dtype, name=f"conv{i}a")(x).astype(jnp.float32))
            y = lrelu(EqualConv(width, 3, dtype=self.dtype, name=f"conv{i}b")(downsample2x(y)).astype(jnp.float32))
            x = (skip.astype(jnp.float32) + y) / SQRT2
        x = lrelu(EqualConv(self.channels[-1], 3, dtype=self.dtype, name="out_conv")(x).astype(jnp.float32))
        x = lrelu(EqualDense(self.channels[-1], dtype=self.dtype, name="out_dense")(x.reshape(x.shape[0], -1)).astype(jnp.float32))
        return EqualDense(1, dtype=self.dtype, name="logit")(x)[:, 0].astype(jnp.float32)
