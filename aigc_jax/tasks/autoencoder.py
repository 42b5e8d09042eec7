"""`autoencoder`: seed 003's convolutional autoencoder on digits.

Sigmoid outputs trained with the mean squared error per pixel (as the seed does). Metrics:
`eval_mse` (test reconstruction error per pixel) and `eval_probe_accuracy`, the test accuracy of a
ridge linear probe on the frozen codes (the `LinearProbe` evaluator, eval/linear_probe.py).
Also holds the FLOP counts of the shared conv encoder and decoder (models/autoencoder.py).
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.autoencoder import ConvAutoencoder, check_stages
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task
from aigc_jax.eval.linear_probe import LinearProbe

IMAGE_SIZE = 28
KERNEL = 3


def conv_encoder_flops(batch: int, channels, features: int, size: int = IMAGE_SIZE, c_in: int = 1,
                       kernel: int = KERNEL) -> float:
    """Forward FLOPs of `ConvEncoder`: stride-2 convolutions, then the Dense layer to `features`."""
    total = 0.0
    for ch in channels:
        size //= 2
        total += flops.conv2d(batch, size, size, kernel, kernel, c_in, ch)
        c_in = ch
    return total + flops.dense(batch, size * size * c_in, features)


def conv_decoder_flops(batch: int, channels, code: int, size: int = IMAGE_SIZE, c_out: int = 1,
                       kernel: int = KERNEL) -> float:
    """Forward FLOPs of `ConvDecoder` (channels in decoder order, e.g. (32, 16))."""
    side = size // 2 ** len(channels)
    total = flops.dense(batch, code, side * side * channels[0])
    for c_in, ch in zip(channels, (*channels[1:], c_out)):
        total += flops.conv_transpose(batch, side, side, kernel, kernel, c_in, ch)
        side *= 2
    return total


class AutoencoderTask(Task):
    name = "autoencoder"
    summary = "convolutional autoencoder, MSE, linear probe on its codes (seed 003)"
    evaluators = (LinearProbe(),)

    @staticmethod
    def default_config():
        c = base_config()
        c.channels = (16, 32)  # encoder convolution widths (the decoder mirrors them)
        # Seed 003's code is 64-d; at that width the codes of the *untrained* network are already as
        # linearly separable (probe 0.94-0.96 over seeds) as the trained ones (0.94-0.955). A 16-d
        # bottleneck is where learning shows: trained 0.92 vs 0.85-0.86 at random init.
        c.code = 16  # width of the code (the bottleneck the probe reads)
        c.steps = 2000
        c.batch_size = 64
        c.learning_rate = 1e-3
        c.log_every = 100
        c.eval_every = 500
        c.ckpt_every = 1000
        c.sample_every = 1000
        return c

    config_ranges = {"code": (1, None)}
    benchmark_presets = {
        "tiny": {"channels": (4, 8), "code": 8, "batch_size": 8},
        "cpu": {"channels": (16, 32), "code": 16, "batch_size": 64},  # seed 003's layers and batch
        "gpu": {"channels": (128, 256), "code": 256, "batch_size": 4096, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        check_stages(config.channels, IMAGE_SIZE)
        super().__init__(config, constants)

    @property
    def model(self):
        return ConvAutoencoder(tuple(self.config.channels), self.config.code,
                               (self.image_size,) * 2 + (self.image_channels,),
                               dtype=self.compute_dtype)

    def load_data(self):
        c = self.config  # colour and size kept (32x32x3 for cifar10); a large train split read from disk batch by batch
        return load_image_splits(c.dataset, c.data_dir, None, num_examples=c.num_examples, colour=True,
                                 in_memory_mb=c.in_memory_mb)

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["image"][:1])
        return create_train_state(self.model, variables, optax.adam(self.config.learning_rate))

    def reconstruct(self, params, images):
        return jax.nn.sigmoid(self.model.apply({"params": params}, images))

    def squared_errors(self, params, images):
        """Per-example mean squared error over pixels: [B]."""
        return ((self.reconstruct(params, images) - images) ** 2).reshape(images.shape[0], -1).mean(-1)

    def train_step(self, state, batch, rng):
        loss, grads = jax.value_and_grad(lambda p: self.squared_errors(p, batch["image"]).mean())(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    def eval_step(self, state, batch, rng):
        return {"mse": (self.squared_errors(state.params, batch["image"]) * batch["mask"]).sum()}

    def probe_features(self, state, batch):
        return self.model.apply({"params": state.params}, batch["image"], method=ConvAutoencoder.encode)

    def sample(self, state, rng, batch):
        params = state.params
        x = jnp.take(batch["image"], jnp.arange(32) % batch["image"].shape[0], axis=0)
        out = {"reconstructions": im.reconstruction_pairs(x, self.reconstruct(params, x))}
        # Codes of 8 pairs of test images, walked along straight lines: what lies between two digits.
        codes = self.model.apply({"params": params}, x[:16], method=ConvAutoencoder.encode)
        t = jnp.linspace(0.0, 1.0, 8)[None, :, None]
        walk = ((1.0 - t) * codes[:8, None] + t * codes[8:, None]).reshape(64, -1)
        out["interpolation"] = jax.nn.sigmoid(self.model.apply({"params": params}, walk, method=ConvAutoencoder.decode))
        return out

    def flops_per_step(self):
        c, b = self.config, self.config.batch_size
        size = self.image_size
        forward = (conv_encoder_flops(b, c.channels, c.code, size)
                   + conv_decoder_flops(b, tuple(reversed(c.channels)), c.code, size))
        return flops.train(forward)
