"""Image classifiers of seed 004: a multilayer perceptron and a small CNN."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.patch_conv import patch_conv
from aigc_jax.models.pooling import max_pool


class MLP(nn.Module):
    """Flatten -> [Dense -> ReLU] * len(hidden) -> Dense(num_classes)."""

    hidden: Sequence[int] = (256, 128)
    num_classes: int = 10
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
        return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class CNN(nn.Module):
    """Conv 32 3x3 ReLU, maxpool 2; Conv 64 3x3 ReLU, maxpool 2; Dense 64 ReLU; Dense 10."""

    channels: Sequence[int] = (32, 64)
    hidden: int = 64
    num_classes: int = 10
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        for ch in self.channels:
            # patch_conv: the image's first layer as a matmul over its 3x3 patches (faster on CPU)
            x = nn.relu(nn.Conv(ch, (3, 3), dtype=self.dtype, conv_general_dilated=patch_conv)(x))
            x = max_pool(x, 2)  # = nn.max_pool(x, (2, 2), strides=(2, 2)), with a faster gradient on CPU
        features = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape((x.shape[0], -1))))
        logits = nn.Dense(self.num_classes, dtype=self.dtype)(features).astype(jnp.float32)
        # The penultimate layer doubles as a feature space for image-quality metrics.
        return (logits, features.astype(jnp.float32)) if return_features else logits
