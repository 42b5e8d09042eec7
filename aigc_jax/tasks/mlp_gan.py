"""`mlp_gan`: the MLP GAN of seeds 000-003 on digits.

Generator and discriminator each have their own optax Adam; one compiled step does a
discriminator update and then a generator update. The fakes are generated inside each loss
function, so each network's gradient flows through them (and the generator sees the updated D).
Non-saturating loss on logits.
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.data.text import EVAL_SPLITS
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import PairState, create_train_state
from aigc_jax.models.gan import MLPDiscriminator, MLPGenerator
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task, per_example_normal

IMAGE_SIZE = 28


def bce_logits(logits, target: float):
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


class MLPGAN(Task):
    name = "mlp_gan"
    summary = "MLP generator vs MLP discriminator, non-saturating loss (seeds 000-003)"
    main_metric = "d_loss"

    @staticmethod
    def default_config():
        c = base_config()
        c.latent = 100  # size of the generator's input noise z
        c.g_hidden = (256, 512)  # generator hidden layer widths
        c.d_hidden = (512, 256)  # discriminator hidden layer widths
        c.steps = 6000
        c.batch_size = 64
        c.learning_rate = 2e-4
        c.beta1 = 0.5  # Adam's beta1 (0.5, as DCGAN recommends for GANs)
        # On 1,437 digits D otherwise learns the train images by heart and G's FD climbs after ~5,000 steps
        # (chosen on the validation split, docs/images.md: FD at step 6000 96 without, 43 at 0.3, 34 and
        # 32 at 0.5 on two seeds)
        c.d_dropout = 0.5  # dropout after each of D's hidden layers while training
        c.log_every = 100
        c.eval_every = 1000
        c.ckpt_every = 1000
        c.sample_every = 1000
        c.eval_split = "test"  # what evaluation scores: "validation" (train images held out) to choose settings
        c.judge_metrics = True  # eval_fd / eval_diversity in the judge classifier's features (tasks/judge.py)
        return c

    config_ranges = {"latent": (1, None), "beta1": (0.0, 1.0), "d_dropout": (0.0, 0.9)}
    config_choices = {"eval_split": EVAL_SPLITS}
    # Benchmarks time the train step: the eval-only judge (tasks/judge.py) is not loaded.
    benchmark_presets = {
        # The seeds' MLP GAN (BENCHMARKS.md shapes, what the PyTorch twin runs) has no dropout.
        "tiny": {"judge_metrics": False, "d_dropout": 0.0, "latent": 8, "g_hidden": (16, 32), "d_hidden": (32, 16), "batch_size": 8},
        "cpu": {"judge_metrics": False, "d_dropout": 0.0, "latent": 100, "g_hidden": (256, 512), "d_hidden": (512, 256), "batch_size": 64},  # BENCHMARKS.md
        "gpu": {"judge_metrics": False, "d_dropout": 0.0, "latent": 128, "g_hidden": (2048, 4096), "d_hidden": (4096, 2048), "batch_size": 4096,
                "dtype": "bfloat16"},
    }

    @property
    def generator(self):
        return MLPGenerator(hidden=tuple(self.config.g_hidden), image_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
                            dtype=self.compute_dtype)

    @property
    def discriminator(self):
        return MLPDiscriminator(hidden=tuple(self.config.d_hidden), dropout=self.config.d_dropout, dtype=self.compute_dtype)

    def load_data(self):
        return im.load_judged_images(self, IMAGE_SIZE)

    def init(self, rng, batch):
        g_rng, d_rng = jax.random.split(rng)
        tx = optax.adam(self.config.learning_rate, b1=self.config.beta1)
        z = jnp.zeros((1, self.config.latent))
        g = create_train_state(self.generator, self.generator.init(g_rng, z), tx)
        d = create_train_state(self.discriminator, self.discriminator.init(d_rng, batch["image"][:1]), tx)
        return PairState(g=g, d=d)

    def train_step(self, state, batch, rng):
        real = batch["image"] * 2.0 - 1.0
        d_keys, g_keys = im.split_keys(batch["key"])
        z_d = per_example_normal(d_keys, (self.config.latent,))
        z_g = per_example_normal(g_keys, (self.config.latent,))
        # D's dropout: its own stream per use of D (the z draws above stay what they were)
        drop_real, drop_fake, drop_g = (jax.vmap(jax.random.fold_in, (0, None))(d_keys, i) for i in (1, 2, 3))

        def d_loss_fn(d_params):
            fake = jax.lax.stop_gradient(state.g.apply_fn({"params": state.g.params}, z_d))
            real_logits = state.d.apply_fn({"params": d_params}, real, drop_real)
            fake_logits = state.d.apply_fn({"params": d_params}, fake, drop_fake)
            loss = bce_logits(real_logits, 1.0) + bce_logits(fake_logits, 0.0)
            return loss, (jax.nn.sigmoid(real_logits).mean(), jax.nn.sigmoid(fake_logits).mean())

        (d_loss, (d_real, d_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d.params)
        d = state.d.apply_gradients(grads=d_grads)

        def g_loss_fn(g_params):
            fake = state.g.apply_fn({"params": g_params}, z_g)
            return bce_logits(d.apply_fn({"params": d.params}, fake, drop_g), 1.0)  # non-saturating

        g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state.g.params)
        g = state.g.apply_gradients(grads=g_grads)
        return PairState(g=g, d=d), {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def generate(self, state, keys):
        z = per_example_normal(keys, (self.config.latent,))
        return im.to_unit(state.g.apply_fn({"params": state.g.params}, z))

    def eval_step(self, state, batch, rng):
        """Pixel statistics of as many fakes as real test images, for a pixel-space Fréchet distance,
        and (config.judge_metrics) the judge classifier's features and class probabilities."""
        fake = self.generate(state, batch["key"])
        return im.generator_eval_sums(self, fake, batch)

    def finalize_eval(self, means):
        return im.generator_metrics(self, means)

    def sample(self, state, rng, batch):
        return {"samples": self.generate(state, jax.random.split(rng, 64))}

    def flops_per_step(self):
        b, c = self.config.batch_size, self.config
        g = flops.mlp(b, (c.latent, *c.g_hidden, IMAGE_SIZE * IMAGE_SIZE))
        d = flops.mlp(b, (IMAGE_SIZE * IMAGE_SIZE, *c.d_hidden, 1))
        # D update: G forward, D trained on real and fake. G update: G and D forward + backward.
        return g + 2 * flops.train(d) + flops.train(g + d)
