"""The variational autoencoder of seeds 001-003: Gaussian encoder, Bernoulli decoder."""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps: a posterior sample that gradients flow through."""
    return mu + jnp.exp(0.5 * logvar) * eps


class Encoder(nn.Module):
    hidden: int = 400
    latent: int = 20
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape((x.shape[0], -1))))
        mu = nn.Dense(self.latent, dtype=self.dtype, name="mu")(x)
        logvar = nn.Dense(self.latent, dtype=self.dtype, name="logvar")(x)
        return mu.astype(jnp.float32), logvar.astype(jnp.float32)


class Decoder(nn.Module):
    hidden: int = 400
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(z))
        logits = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(x).astype(jnp.float32)
        return logits.reshape((z.shape[0], *self.image_shape))  # Bernoulli logits per pixel


class VAE(nn.Module):
    """x -> (mu, logvar) -> z = mu + sigma * eps -> Bernoulli logits of x."""

    hidden: int = 400
    latent: int = 20
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32

    def setup(self):
        self.encoder = Encoder(self.hidden, self.latent, self.dtype)
        self.decoder = Decoder(self.hidden, self.image_shape, self.dtype)

    def __call__(self, x, eps):
        mu, logvar = self.encoder(x)
        return self.decoder(reparameterize(mu, logvar, eps)), mu, logvar

    def decode(self, z):
        return self.decoder(z)
