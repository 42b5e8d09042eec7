"""`vae`: the variational autoencoder of seeds 001-003 on digits.

Bernoulli decoder (pixel intensities in [0, 1] as targets), Gaussian posterior, standard normal
prior. Loss per image = binary cross-entropy summed over pixels + KL(q(z|x) || N(0, I)), averaged
over the batch; `eval_elbo` is minus that on the test split (nats per image, higher is better).
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.vae import VAE
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task, per_example_normal

IMAGE_SIZE = 28


def negative_elbo_terms(logits, x, mu, logvar):
    """Per-example (reconstruction BCE summed over pixels, KL to the standard normal)."""
    rec = sigmoid_cross_entropy(logits, x).reshape(x.shape[0], -1).sum(-1)
    return rec, kl_to_standard_normal(mu, logvar)


def sigmoid_cross_entropy(logits, targets):
    """optax.sigmoid_binary_cross_entropy's value, -t log s(x) - (1 - t) log(1 - s(x)), written as
    softplus(x) - t x, softplus(x) = max(x, 0) + log(1 + exp(-|x|)): stable for any x, and its
    gradient is s(x) - t, even at 0 (a custom JVP, reusing the exp). One softplus where optax
    computes two log-sigmoids (the vae step 8% faster), and `log(1 + e)` where `jax.nn.softplus`
    has `log1p(e)`: with e = exp(-|x|) in (0, 1] the two differ by under 1.2e-7, and XLA:CPU's
    log1p is the slower (forward + gradient at [128, 784] on one core 0.39 -> 0.22 ms, the vae step
    6% faster there; docs/benchmarks.md)."""
    return softplus(logits) - logits * targets


@jax.custom_jvp
def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|))."""
    return jnp.maximum(x, 0) + jnp.log(1 + jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    e = jnp.exp(-jnp.abs(x))
    sigmoid = jnp.where(x >= 0, 1, e) / (1 + e)  # from the same exp; 1/2 at 0, as jax.nn.softplus
    return jnp.maximum(x, 0) + jnp.log(1 + e), sigmoid * t


def kl_to_standard_normal(mu, logvar):
    """Per-example KL(N(mu, exp(logvar)) || N(0, I)) in nats: [B]."""
    return 0.5 * (jnp.exp(logvar) + mu**2 - 1.0 - logvar).sum(-1)


class VAETask(Task):
    name = "vae"
    summary = "variational autoencoder, Bernoulli decoder, ELBO (seeds 001-003)"

    @staticmethod
    def default_config():
        c = base_config()
        c.hidden = 400  # width of the encoder's and decoder's hidden layer
        c.latent = 20  # size of the latent code z
        c.steps = 3000
        c.batch_size = 128
        c.learning_rate = 1e-3
        c.log_every = 100
        c.eval_every = 500
        c.ckpt_every = 1000
        c.sample_every = 1000
        c.judge_metrics = True  # eval_fd / eval_diversity in the judge classifier's features (tasks/judge.py)
        return c

    config_ranges = {"hidden": (1, None), "latent": (1, None)}
    # Benchmarks time the train step: the eval-only judge (tasks/judge.py) is not loaded.
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "hidden": 32, "latent": 4, "batch_size": 8},
        "cpu": {"judge_metrics": False, "hidden": 400, "latent": 20, "batch_size": 128},  # BENCHMARKS.md
        "gpu": {"judge_metrics": False, "hidden": 4096, "latent": 128, "batch_size": 4096, "dtype": "bfloat16"},
    }

    @property
    def model(self):
        return VAE(hidden=self.config.hidden, latent=self.config.latent, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
                   dtype=self.compute_dtype)

    def load_data(self):
        return im.load_judged_images(self, IMAGE_SIZE)

    def init(self, rng, batch):
        eps = jnp.zeros((1, self.config.latent))
        variables = self.model.init(rng, batch["image"][:1], eps)
        return create_train_state(self.model, variables, optax.adam(self.config.learning_rate))

    def _terms(self, params, batch):
        eps = per_example_normal(batch["key"], (self.config.latent,))
        logits, mu, logvar = self.model.apply({"params": params}, batch["image"], eps)
        return negative_elbo_terms(logits, batch["image"], mu, logvar)

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            rec, kl = self._terms(params, batch)
            return (rec + kl).mean(), (rec.mean(), kl.mean())

        (loss, (rec, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "reconstruction": rec, "kl": kl}

    def eval_step(self, state, batch, rng):
        rec, kl = self._terms(state.params, batch)
        m = batch["mask"]
        sums = {"elbo": (-(rec + kl) * m).sum(), "reconstruction": (rec * m).sum(), "kl": (kl * m).sum()}
        if self.config.judge_metrics:  # prior samples (Bernoulli means of the decoder at z ~ N(0, I))
            z_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(batch["key"])  # independent of the ELBO's eps
            fake = self.decode_mean(state.params, per_example_normal(z_keys, (self.config.latent,)))
            sums.update(im.judge_sums(im.require_judge(self), fake, batch["image"], m))
        return sums

    def finalize_eval(self, means):
        if not self.config.judge_metrics:
            return means
        return {**im.without_judge_sums(means), **im.judge_metrics(means)}

    def decode_mean(self, params, z):
        """Decoder Bernoulli means in [0, 1]: images [B, 28, 28, 1]."""
        return jax.nn.sigmoid(self.model.apply({"params": params}, z, method="decode"))

    def sample(self, state, rng, batch):
        prior_key, walk_key = jax.random.split(rng)
        z = per_example_normal(jax.random.split(prior_key, 64), (self.config.latent,))
        x = jnp.take(batch["image"], jnp.arange(32) % batch["image"].shape[0], axis=0)
        mu, _ = self.model.apply({"params": state.params}, x, method=lambda m, x: m.encoder(x))
        # Reconstruction rows alternate with their test images; interpolation rows walk between
        # two prior draws (slerp), left to right.
        return {"samples": self.decode_mean(state.params, z),
                "reconstructions": im.reconstruction_pairs(x, self.decode_mean(state.params, mu)),
                "interpolation": self.decode_mean(state.params, im.interpolation_latents(walk_key, self.config.latent))}

    def flops_per_step(self):
        c, b, pixels = self.config, self.config.batch_size, IMAGE_SIZE * IMAGE_SIZE
        forward = flops.mlp(b, (pixels, c.hidden, 2 * c.latent)) + flops.mlp(b, (c.latent, c.hidden, pixels))
        return flops.train(forward)
