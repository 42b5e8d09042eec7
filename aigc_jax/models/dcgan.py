"""The DCGAN of seed 001 (Radford et al. 2016) at 32x32: transposed convolutions up, strided
convolutions down, BatchNorm in both networks, no convolution biases (BatchNorm's shift replaces them).

BatchNorm averages its batch statistics over `batch_axis` (the engine's data axis, given by the
task) when the step is traced per device under shard_map/pmap, so they are those of the *global*
batch in every parallel mode.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.axes import bound_axis
from aigc_jax.models.conv_transpose import ConvTranspose


INIT = nn.initializers.normal(0.02)  # the paper's N(0, 0.02) weights


def batch_norm(train: bool, dtype, batch_axis: str | None) -> nn.BatchNorm:
    # momentum 0.9 = PyTorch's BatchNorm momentum 0.1 (the weight of the new batch).
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                        axis_name=bound_axis(batch_axis))


class DCGANGenerator(nn.Module):
    """z [B, latent] -> ConvT 4x4 valid (1 -> 4) -> [ConvT 4x4 stride 2, BN, ReLU] ... -> ConvT to
    `out_channels`, tanh: [B, 32, 32, out_channels] in [-1, 1]. `channels` are the widths at 4, 8 and 16 pixels."""

    channels: Sequence[int] = (512, 256, 128)
    out_channels: int = 1  # image channels: 1 grey, 3 colour
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32
    batch_axis: str | None = None  # the data-parallel axis BatchNorm averages over when it is bound

    @nn.compact
    def __call__(self, z, train: bool = True):
        x = z.reshape((z.shape[0], 1, 1, z.shape[-1])).astype(self.dtype)
        x = ConvTranspose(self.channels[0], (4, 4), padding="VALID", use_bias=False, kernel_init=INIT, dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, self.dtype, self.batch_axis)(x))
        for width in self.channels[1:]:
            x = ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, kernel_init=INIT, dtype=self.dtype)(x)
            x = nn.relu(batch_norm(train, self.dtype, self.batch_axis)(x))
        x = ConvTranspose(self.out_channels, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, kernel_init=INIT,
                          dtype=self.dtype)(x)
        return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
    """[B, 32, 32, 1] -> Conv 4x4 stride 2, LeakyReLU(0.2) (no BN on the input layer) -> [Conv 4x4
    stride 2, BN, LeakyReLU] ... -> Conv 4x4 valid to one logit per image. `channels` are the widths
    at 16, 8 and 4 pixels."""

    channels: Sequence[int] = (128, 256, 512)
    dtype: Any = jnp.float32
    batch_axis: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = x.astype(self.dtype)
        x = nn.leaky_relu(nn.Conv(self.channels[0], (4, 4), strides=(2, 2), use_bias=False, kernel_init=INIT, dtype=self.dtype)(x), 0.2)
        for width in self.channels[1:]:
            x = nn.Conv(width, (4, 4), strides=(2, 2), use_bias=False, kernel_init=INIT, dtype=self.dtype)(x)
            x = nn.leaky_relu(batch_norm(train, self.dtype, self.batch_axis)(x), 0.2)
        x = nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=INIT, dtype=self.dtype)(x)
        return x.reshape((x.shape[0],)).astype(jnp.float32)
