"""Convolutional encoder and decoder of seed 003's autoencoder, shared by `conv_vae` and `vae_gan`.

Seed 003's model (28x28x1): Conv 16 3x3 s2 ReLU -> Conv 32 3x3 s2 ReLU -> Conv 64 7x7 valid (the
code); back: ConvT 32 7x7 valid ReLU -> ConvT 16 3x3 s2 ReLU -> ConvT 1 3x3 s2 (-> sigmoid). A 7x7
valid convolution of a 7x7 map is a Dense layer on the flattened map, and its transpose is a Dense
layer reshaped to 7x7, so both ends are written as Dense here: any code size, any number of
stride-2 stages (the image side must divide by 2 per stage).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.conv_transpose import ConvTranspose  # nn.ConvTranspose with a fast kernel gradient
from aigc_jax.models.vae import reparameterize


class ConvEncoder(nn.Module):
    """image [B, H, W, C] -> [Conv 3x3 s2 -> act] per channel count -> flatten -> Dense(features)."""

    channels: Sequence[int] = (16, 32)
    features: int = 64
    kernel: int = 3
    negative_slope: float = 0.0  # 0: ReLU; > 0: LeakyReLU (the VAE-GAN's discriminator-style nets)
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x):
        x = x.astype(self.dtype)
        for ch in self.channels:
            x = nn.leaky_relu(nn.Conv(ch, (self.kernel,) * 2, strides=2, dtype=self.dtype)(x), self.negative_slope)
        return nn.Dense(self.features, dtype=self.dtype)(x.reshape((x.shape[0], -1))).astype(jnp.float32)


class ConvDecoder(nn.Module):
    """code [B, D] -> Dense to an (H / 2^n, W / 2^n, channels[0]) map -> act -> [ConvT 3x3 s2 -> act]
    through channels[1:] -> ConvT 3x3 s2 to the image's channels: pre-activation outputs (logits)."""

    channels: Sequence[int] = (32, 16)
    image_shape: Sequence[int] = (28, 28, 1)
    kernel: int = 3
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        h, w, c = self.image_shape
        scale = 2 ** len(self.channels)
        x = nn.Dense(h // scale * w // scale * self.channels[0], dtype=self.dtype)(z.astype(self.dtype))
        x = nn.relu(x.reshape((z.shape[0], h // scale, w // scale, self.channels[0])))
        for ch in self.channels[1:]:
            x = nn.relu(ConvTranspose(ch, (self.kernel,) * 2, strides=(2, 2), dtype=self.dtype)(x))
        x = ConvTranspose(c, (self.kernel,) * 2, strides=(2, 2), dtype=self.dtype)(x)
        return x.astype(jnp.float32)


class ConvAutoencoder(nn.Module):
    """Seed 003's convolutional autoencoder: image -> code -> per-pixel logits (sigmoid = image)."""

    channels: Sequence[int] = (16, 32)
    code: int = 64
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32

    def setup(self):
        self.encoder = ConvEncoder(self.channels, self.code, dtype=self.dtype)
        self.decoder = ConvDecoder(tuple(reversed(self.channels)), self.image_shape, dtype=self.dtype)

    def __call__(self, x):
        return self.decoder(self.encoder(x))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)


def check_stages(channels, image_size: int) -> None:
    """Each stride-2 stage halves the image side, so it must divide by 2 ** len(channels)."""
    from aigc_jax.errors import UserError

    if image_size % 2 ** len(channels):
        raise UserError(f"config.channels={tuple(channels)!r}: {len(channels)} stride-2 stages need an image side "
                        f"divisible by {2 ** len(channels)}, got {image_size}; expected at most 2 entries at 28x28")


class ConvVAE(nn.Module):
    """The VAE (models/vae.py) with seed 003's convolutional encoder and decoder: x -> (mu, logvar)
    -> z = mu + sigma * eps -> logits of x (Bernoulli for `conv_vae`, tanh image for `vae_gan`)."""

    channels: Sequence[int] = (32, 64)
    latent: int = 16
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32

    def setup(self):
        self.conv = ConvEncoder(self.channels, 2 * self.latent, dtype=self.dtype)
        self.decoder = ConvDecoder(tuple(reversed(self.channels)), self.image_shape, dtype=self.dtype)

    def encoder(self, x):
        mu, logvar = jnp.split(self.conv(x), 2, axis=-1)
        return mu, logvar

    def __call__(self, x, eps):
        mu, logvar = self.encoder(x)
        return self.decoder(reparameterize(mu, logvar, eps)), mu, logvar

    def decode(self, z):
        return self.decoder(z)
