"""SimCLR's networks: a convolutional encoder f and an MLP projection head g, z = g(f(x)).

The encoder is the digits classifier CNN (`models/classifier.py`): its penultimate features are the
representation h = f(x) that the linear probe reads, and its output layer (width `head_hidden`
instead of 10 classes) is the head's first layer, so g(h) = W2 relu(W1 h) as in the paper.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.classifier import CNN


class SimCLR(nn.Module):
    channels: Sequence[int] = (32, 64)
    hidden: int = 128  # width of the representation h
    head_hidden: int = 128
    projection: int = 64  # width of z, where the contrastive loss is taken
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    def setup(self):
        self.encoder = CNN(channels=tuple(self.channels), hidden=self.hidden, num_classes=self.head_hidden,
                           dtype=self.dtype)
        self.head_out = nn.Dense(self.projection, dtype=self.dtype)

    def __call__(self, x):
        """(h [B, hidden], z [B, projection]), both float32."""
        head_pre, h = self.encoder(x, return_features=True)
        z = self.head_out(nn.relu(head_pre))
        return h, z.astype(jnp.float32)

    def features(self, x):
        """The representation h = f(x) alone (the head's first layer is computed and dropped by XLA)."""
        return self.encoder(x, return_features=True)[1]
