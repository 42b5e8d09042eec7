"""`vae_gan`: the VAE/GAN of Larsen et al. (2016), "Autoencoding beyond pixels", on digits.

A VAE whose reconstruction term is a Gaussian log-likelihood in the feature space of a hidden
layer of a GAN discriminator (`Dis_l`, models/vae_gan.py) instead of per pixel, so the decoder is
pushed towards what D tells apart (strokes) rather than the pixel mean (blur). Three networks with
an optax Adam each; one compiled step makes, as the paper's Algorithm 1 does:

- a D update on real images (label 1) vs reconstructions and prior samples (label 0);
- then, against the updated D, an encoder update on KL + L_llike and a decoder update on
  gamma * L_llike + L_GAN (non-saturating: reconstructions and prior samples labelled real).
  Each loss reaches only its own network's parameters (the paper's limited error signals): both
  gradients come from one forward pass, pulled back twice through one `jax.vjp`.

L_llike per image = ||Dis_l(x) - Dis_l(x~)||^2 / (2 * feature_sigma^2) over Dis_l's units (minus
the log of an isotropic Gaussian, up to a constant); the KL term is the `vae` family's
(`tasks/vae.kl_to_standard_normal`).
Images are in [-1, 1] for the networks (tanh decoder); samples and metrics take them to [0, 1].
"""

import jax
import jax.numpy as jnp
import optax
from flax import struct

from aigc_jax import flops
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import TrainState, create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.autoencoder import ConvDecoder, ConvEncoder, check_stages
from aigc_jax.models.vae import reparameterize
from aigc_jax.models.vae_gan import FeatureDiscriminator
from aigc_jax.tasks import images as im
from aigc_jax.tasks.autoencoder import conv_decoder_flops, conv_encoder_flops
from aigc_jax.tasks.base import Task, per_example_normal
from aigc_jax.tasks.mlp_gan import bce_logits
from aigc_jax.tasks.vae import kl_to_standard_normal

IMAGE_SIZE = 28
D_KERNEL = 5


@struct.dataclass
class VAEGANState:
    """Encoder, decoder (the generator) and discriminator, each with its own optimizer."""

    enc: TrainState
    dec: TrainState
    disc: TrainState

    @property
    def step(self):
        return self.disc.step


class VAEGANTask(Task):
    name = "vae_gan"
    summary = "VAE/GAN: VAE with a discriminator-feature reconstruction loss (Larsen et al. 2016)"
    main_metric = "d_loss"

    @staticmethod
    def default_config():
        c = base_config()
        # Tuned on the digits at this CPU budget (600-step probes): the first D layer as Dis_l and
        # sigma 3 gave judge FD 172 where the last layer and sigma 1-6 stayed at 420-670 (noisy prior
        # samples: deeper features do not see pixel noise); latent 8 and lr 5e-4 learn faster.
        c.latent = 8  # size of the latent code z
        c.channels = (16, 32)  # encoder's (seed 003's autoencoder); the decoder mirrors it
        c.d_channels = (16, 32)  # discriminator convolution widths
        c.d_hidden = 64  # discriminator dense width
        c.feature_layer = 0  # which of D's conv layers is Dis_l (0 = the first, -1 = the last)
        c.gamma = 1.0  # weight of L_llike against L_GAN in the decoder's loss
        c.feature_sigma = 3.0  # standard deviation of the Gaussian likelihood in Dis_l
        c.steps = 2000
        c.batch_size = 64
        c.learning_rate = 5e-4
        c.beta1 = 0.5  # Adam's beta1
        c.log_every = 100
        c.eval_every = 500
        c.ckpt_every = 1000
        c.sample_every = 1000
        c.judge_metrics = True  # eval_fd / eval_diversity in the judge classifier's features (tasks/judge.py)
        return c

    config_ranges = {"latent": (1, None), "d_hidden": (1, None), "gamma": (0.0, None),
                     "feature_sigma": (1e-6, None), "beta1": (0.0, 1.0)}
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "latent": 4, "channels": (4, 8), "d_channels": (4, 8), "d_hidden": 8,
                 "batch_size": 8},
        "cpu": {"judge_metrics": False, "latent": 8, "channels": (16, 32), "d_channels": (16, 32), "d_hidden": 64,
                "batch_size": 64},
        "gpu": {"judge_metrics": False, "latent": 128, "channels": (128, 256), "d_channels": (128, 256),
                "d_hidden": 1024, "batch_size": 2048, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        check_stages(config.channels, IMAGE_SIZE)
        n = len(config.d_channels)
        if not -n <= config.feature_layer < n:
            raise UserError(f"config.feature_layer={config.feature_layer}: expected a layer index in [{-n}, {n - 1}] "
                            f"of config.d_channels={tuple(config.d_channels)!r}")
        super().__init__(config, constants)

    @property
    def encoder(self):
        return ConvEncoder(tuple(self.config.channels), 2 * self.config.latent, dtype=self.compute_dtype)

    @property
    def decoder(self):
        return ConvDecoder(tuple(reversed(self.config.channels)),
                           (self.image_size,) * 2 + (self.image_channels,), dtype=self.compute_dtype)

    @property
    def discriminator(self):
        return FeatureDiscriminator(tuple(self.config.d_channels), self.config.d_hidden, self.config.feature_layer,
                                    dtype=self.compute_dtype)

    def load_data(self):
        return im.load_judged_images(self, None, colour=True)  # colour sets in colour, at their size

    def init(self, rng, batch):
        e_rng, g_rng, d_rng = jax.random.split(rng, 3)
        tx = optax.adam(self.config.learning_rate, b1=self.config.beta1)
        x, z = batch["image"][:1], jnp.zeros((1, self.config.latent))
        return VAEGANState(enc=create_train_state(self.encoder, self.encoder.init(e_rng, x), tx),
                           dec=create_train_state(self.decoder, self.decoder.init(g_rng, z), tx),
                           disc=create_train_state(self.discriminator, self.discriminator.init(d_rng, x), tx))

    # Pieces of the forward pass, each a pure function of one network's params.

    def posterior(self, enc_params, images):
        """(mu, logvar) of q(z | x) for images in [0, 1]."""
        return jnp.split(self.encoder.apply({"params": enc_params}, images * 2.0 - 1.0), 2, axis=-1)

    def generate(self, dec_params, z):
        """Decoder images in [-1, 1]."""
        return jnp.tanh(self.decoder.apply({"params": dec_params}, z))

    def discriminate(self, d_params, images):
        """(logits, Dis_l features) of images in [-1, 1]."""
        return self.discriminator.apply({"params": d_params}, images)

    def _noise(self, batch):
        eps_keys, prior_keys = im.split_keys(batch["key"])
        shape = (self.config.latent,)
        return per_example_normal(eps_keys, shape), per_example_normal(prior_keys, shape)

    def _fakes(self, enc_params, dec_params, batch, eps, z_prior):
        """(mu, logvar, reconstructions, prior samples); the last two in [-1, 1]."""
        mu, logvar = self.posterior(enc_params, batch["image"])
        rec = self.generate(dec_params, reparameterize(mu, logvar, eps))
        return mu, logvar, rec, self.generate(dec_params, z_prior)

    def feature_nll(self, real_features, rec_features):
        """Per-example -log N(Dis_l(x) | Dis_l(x~), sigma^2 I), up to a constant: [B]."""
        return 0.5 * ((real_features - rec_features) ** 2).sum(-1) / self.config.feature_sigma**2

    def train_step(self, state, batch, rng):
        c = self.config
        real = batch["image"] * 2.0 - 1.0
        eps, z_prior = self._noise(batch)

        _, _, rec, prior = jax.lax.stop_gradient(self._fakes(state.enc.params, state.dec.params, batch, eps, z_prior))

        def d_loss_fn(d_params):
            real_logits, _ = self.discriminate(d_params, real)
            rec_logits, _ = self.discriminate(d_params, rec)
            prior_logits, _ = self.discriminate(d_params, prior)
            loss = bce_logits(real_logits, 1.0) + bce_logits(rec_logits, 0.0) + bce_logits(prior_logits, 0.0)
            return loss, (jax.nn.sigmoid(real_logits).mean(), jax.nn.sigmoid(prior_logits).mean())

        (d_loss, (d_real, d_prior)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.disc.params)
        disc = state.disc.apply_gradients(grads=d_grads)

        _, real_features = self.discriminate(disc.params, real)

        def losses(enc_params, dec_params):
            mu, logvar, rec, prior = self._fakes(enc_params, dec_params, batch, eps, z_prior)
            rec_logits, rec_features = self.discriminate(disc.params, rec)
            prior_logits, _ = self.discriminate(disc.params, prior)
            llike = self.feature_nll(real_features, rec_features).mean()
            kl = kl_to_standard_normal(mu, logvar).mean()
            gan = bce_logits(rec_logits, 1.0) + bce_logits(prior_logits, 1.0)
            return (kl + llike, c.gamma * llike + gan), (llike, kl, gan)

        (enc_loss, dec_loss), pull, (llike, kl, gan) = jax.vjp(losses, state.enc.params, state.dec.params, has_aux=True)
        enc_grads, _ = pull((jnp.ones_like(enc_loss), jnp.zeros_like(dec_loss)))
        _, dec_grads = pull((jnp.zeros_like(enc_loss), jnp.ones_like(dec_loss)))
        new = VAEGANState(enc=state.enc.apply_gradients(grads=enc_grads),
                          dec=state.dec.apply_gradients(grads=dec_grads), disc=disc)
        return new, {"d_loss": d_loss, "g_loss": gan, "feature_nll": llike, "kl": kl,
                     "d_real": d_real, "d_prior": d_prior}

    def eval_step(self, state, batch, rng):
        eps, z_prior = self._noise(batch)
        mu, logvar, _, prior = self._fakes(state.enc.params, state.dec.params, batch, eps, z_prior)
        x, m = batch["image"], batch["mask"]
        rec = im.to_unit(self.generate(state.dec.params, mu))  # posterior-mean reconstruction
        mse = ((rec - x) ** 2).reshape(x.shape[0], -1).mean(-1)
        kl = kl_to_standard_normal(mu, logvar)
        sums = {"reconstruction_mse": (mse * m).sum(), "kl": (kl * m).sum()}
        if self.config.judge_metrics:
            sums.update(im.judge_sums(im.require_judge(self), im.to_unit(prior), x, m))
        return sums

    def finalize_eval(self, means):
        if not self.config.judge_metrics:
            return means
        return {**im.without_judge_sums(means), **im.judge_metrics(means)}

    def sample(self, state, rng, batch):
        prior_key, walk_key = jax.random.split(rng)
        dec = state.dec.params
        z = per_example_normal(jax.random.split(prior_key, 64), (self.config.latent,))
        x = jnp.take(batch["image"], jnp.arange(32) % batch["image"].shape[0], axis=0)
        mu, _ = self.posterior(state.enc.params, x)
        return {"samples": im.to_unit(self.generate(dec, z)),
                "reconstructions": im.reconstruction_pairs(x, im.to_unit(self.generate(dec, mu))),
                "interpolation": im.to_unit(self.generate(dec, im.interpolation_latents(walk_key, self.config.latent)))}

    def flops_per_step(self):
        c, b = self.config, self.config.batch_size
        size = self.image_size
        enc = conv_encoder_flops(b, c.channels, 2 * c.latent, size)
        dec = conv_decoder_flops(b, tuple(reversed(c.channels)), c.latent, size)
        disc = conv_encoder_flops(b, c.d_channels, c.d_hidden, size, kernel=D_KERNEL) + flops.dense(b, c.d_hidden, 1)
        # D update: E and 2 G forwards, D trained on 3 batches. E/G update: D forward on the reals;
        # E, 2 G and 2 D passes forward and backward, with one extra backward (the second pull).
        d_update = enc + 2 * dec + 3 * flops.train(disc)
        eg_update = disc + flops.train(enc + 2 * dec + 2 * disc) + 2 * (enc + 2 * dec + 2 * disc)
        return d_update + eg_update
