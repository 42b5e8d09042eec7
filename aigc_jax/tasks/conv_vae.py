"""`conv_vae`: the `vae` family (same loss, metrics and samples) with seed 003's convolutional
encoder and decoder (models/autoencoder.py) in place of the MLPs. Its posterior means are also
probed linearly (`eval_probe_accuracy`), as the autoencoder's codes are."""

from aigc_jax import flops
from aigc_jax.models.autoencoder import ConvVAE, check_stages
from aigc_jax.tasks import images as im
from aigc_jax.tasks.autoencoder import conv_decoder_flops, conv_encoder_flops
from aigc_jax.tasks.vae import IMAGE_SIZE, VAETask
from aigc_jax.eval.linear_probe import LinearProbe


class ConvVAETask(VAETask):
    name = "conv_vae"
    summary = "VAE with convolutional encoder/decoder, Bernoulli decoder, ELBO"
    evaluators = (LinearProbe(),)

    @staticmethod
    def default_config():
        c = VAETask.default_config()
        del c["hidden"]
        c.channels = (32, 64)  # encoder convolution widths (the decoder mirrors them)
        c.latent = 16  # size of the latent code z
        c.steps = 2000
        c.batch_size = 64
        return c

    config_ranges = {"latent": (1, None)}
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "channels": (4, 8), "latent": 4, "batch_size": 8},
        "cpu": {"judge_metrics": False, "channels": (32, 64), "latent": 16, "batch_size": 64},
        "gpu": {"judge_metrics": False, "channels": (128, 256), "latent": 128, "batch_size": 4096, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        check_stages(config.channels, IMAGE_SIZE)
        super().__init__(config, constants)

    @property
    def model(self):
        return ConvVAE(tuple(self.config.channels), self.config.latent,
                       (self.image_size,) * 2 + (self.image_channels,),
                       dtype=self.compute_dtype)

    def load_data(self):
        return im.load_judged_images(self, None, colour=True)  # convolutional: colour sets in colour, at their size

    def probe_features(self, state, batch):
        mu, _ = self.model.apply({"params": state.params}, batch["image"], method=lambda m, x: m.encoder(x))
        return mu

    def flops_per_step(self):
        c, b = self.config, self.config.batch_size
        size = self.image_size
        forward = (conv_encoder_flops(b, c.channels, 2 * c.latent, size)
                   + conv_decoder_flops(b, tuple(reversed(c.channels)), c.latent, size))
        return flops.train(forward)
