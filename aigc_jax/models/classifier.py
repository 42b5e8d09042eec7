"""Image classifiers of seed 004: a multilayer perceptron and a small CNN."""

from collections.abc import Sequence

import flax.linen as nn


class MLP(nn.Module):
    """Flatten -> [Dense -> ReLU] * len(hidden) -> Dense(num_classes)."""

    hidden: Sequence[int] = (256, 128)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


class CNN(nn.Module):
    """Conv 32 3x3 ReLU, maxpool 2; Conv 64 3x3 ReLU, maxpool 2; Dense 64 ReLU; Dense 10."""

    channels: Sequence[int] = (32, 64)
    hidden: int = 64
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        for ch in self.channels:
            x = nn.relu(nn.Conv(ch, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        features = nn.relu(nn.Dense(self.hidden)(x.reshape((x.shape[0], -1))))
        logits = nn.Dense(self.num_classes)(features)
        # The penultimate layer doubles as a feature space for image-quality metrics.
        return (logits, features) if return_features else logits
