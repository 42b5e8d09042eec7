"""`dcgan`: the DCGAN of seed 001 on the 32x32 digits, or in colour on a colour set (`synthetic_images`).

One compiled step is a discriminator update and then a generator update (as `mlp_gan`), each
network with its own Adam (lr 2e-4, b1 0.5, the paper's). BatchNorm statistics live in each
network's `TrainState.batch_stats`:
- D update: D sees the real batch, then the fakes (two forward passes, as the seed's PyTorch code
  does), and keeps the running statistics both passes leave.
- G update: G's forward pass in train mode gives the new G statistics; D's forward pass there is
  in train mode too (batch statistics), but its statistics updates are dropped: D's running
  averages describe what D was trained on, and are never used by sampling anyway.
- Sampling and evaluation run G with its running averages (`train=False`).
Under shard_map/pmap BatchNorm averages its batch moments over the data axis, so every mode
normalises with the global batch's statistics and keeps the same running averages.
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.engine import parallel
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import PairState, create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task, per_example_normal
from aigc_jax.tasks.mlp_gan import bce_logits

IMAGE_SIZE = 32


class DCGANTask(Task):
    name = "dcgan"
    summary = "DCGAN: transposed-conv generator, conv discriminator, BatchNorm in both (seed 001)"
    main_metric = "d_loss"

    @staticmethod
    def default_config():
        c = base_config()
        c.latent = 100  # size of the generator's input noise z
        # The seed's widths are (512, 256, 128) / (128, 256, 512) (the `cpu` benchmark preset); a
        # quarter of them trains in minutes on a laptop CPU.
        c.g_channels = (128, 64, 32)  # generator widths at 4, 8 and 16 pixels
        c.d_channels = (32, 64, 128)  # discriminator widths at 16, 8 and 4 pixels
        c.steps = 1000
        c.batch_size = 64
        c.learning_rate = 2e-4
        c.beta1 = 0.5  # Adam's beta1 (0.5, as the DCGAN paper)
        c.log_every = 50
        c.eval_every = 250
        c.ckpt_every = 250
        c.sample_every = 250
        c.judge_metrics = True  # eval_fd / eval_diversity in the judge classifier's features (tasks/judge.py)
        return c

    config_ranges = {"latent": (1, None), "beta1": (0.0, 1.0)}
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "latent": 8, "g_channels": (16, 8, 8), "d_channels": (8, 8, 16), "batch_size": 8},
        "cpu": {"judge_metrics": False, "latent": 100, "g_channels": (512, 256, 128), "d_channels": (128, 256, 512),
                "batch_size": 64},  # BENCHMARKS.md
        "gpu": {"judge_metrics": False, "latent": 100, "g_channels": (1024, 512, 256), "d_channels": (256, 512, 1024),
                "batch_size": 1024, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        for key in ("g_channels", "d_channels"):
            if len(config[key]) != 3:
                raise UserError(f"config.{key}={','.join(map(str, config[key]))}: expected 3 widths "
                                "(the 4, 8, 16-pixel layers of G; the 16, 8, 4-pixel layers of D)")

    @property
    def generator(self):
        return DCGANGenerator(channels=tuple(self.config.g_channels), out_channels=self.image_channels,
                              dtype=self.compute_dtype, batch_axis=parallel.DATA_AXIS)

    @property
    def discriminator(self):
        return DCGANDiscriminator(channels=tuple(self.config.d_channels), dtype=self.compute_dtype,
                                  batch_axis=parallel.DATA_AXIS)

    def load_data(self):
        return im.load_judged_images(self, IMAGE_SIZE, colour=True)

    def init(self, rng, batch):
        g_rng, d_rng = jax.random.split(rng)
        tx = optax.adam(self.config.learning_rate, b1=self.config.beta1)
        z = jnp.zeros((2, self.config.latent))  # 2: BatchNorm needs a batch
        g = create_train_state(self.generator, self.generator.init(g_rng, z), tx)
        d = create_train_state(self.discriminator, self.discriminator.init(d_rng, batch["image"][:2]), tx)
        return PairState(g=g, d=d)

    def train_step(self, state, batch, rng):
        real = batch["image"] * 2.0 - 1.0
        d_keys, g_keys = im.split_keys(batch["key"])
        z_d = per_example_normal(d_keys, (self.config.latent,))
        z_g = per_example_normal(g_keys, (self.config.latent,))
        fake_d, _ = state.g.apply_fn(state.g.variables(), z_d, mutable=["batch_stats"])
        fake_d = jax.lax.stop_gradient(fake_d)

        def d_loss_fn(d_params):
            real_logits, stats = state.d.apply_fn({"params": d_params, "batch_stats": state.d.batch_stats}, real,
                                                  mutable=["batch_stats"])
            fake_logits, stats = state.d.apply_fn({"params": d_params, **stats}, fake_d, mutable=["batch_stats"])
            loss = bce_logits(real_logits, 1.0) + bce_logits(fake_logits, 0.0)
            return loss, (stats["batch_stats"], jax.nn.sigmoid(real_logits).mean(), jax.nn.sigmoid(fake_logits).mean())

        (d_loss, (d_stats, d_real, d_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d.params)
        d = state.d.apply_gradients(grads=d_grads).replace(batch_stats=d_stats)

        def g_loss_fn(g_params):
            fake, stats = state.g.apply_fn(state.g.variables(g_params), z_g, mutable=["batch_stats"])
            logits, _ = d.apply_fn(d.variables(), fake, mutable=["batch_stats"])  # D's stat updates dropped
            return bce_logits(logits, 1.0), stats["batch_stats"]  # non-saturating

        (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g.params)
        g = state.g.apply_gradients(grads=g_grads).replace(batch_stats=g_stats)
        return PairState(g=g, d=d), {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def generate_from(self, state, z):
        """G with its running BatchNorm averages: images [B, 32, 32, C] in [0, 1]."""
        return im.to_unit(state.g.apply_fn(state.g.variables(), z, train=False))

    def eval_step(self, state, batch, rng):
        fake = self.generate_from(state, per_example_normal(batch["key"], (self.config.latent,)))
        return im.generator_eval_sums(self, fake, batch)

    def finalize_eval(self, means):
        return im.generator_metrics(self, means)

    def sample(self, state, rng, batch):
        grid_rng, strip_rng = jax.random.split(rng)
        z = per_example_normal(jax.random.split(grid_rng, 64), (self.config.latent,))
        # Rows of the strip walk between two latent draws (8 rows x 8 steps).
        return {"samples": self.generate_from(state, z),
                "interpolation": self.generate_from(state, im.interpolation_latents(strip_rng, self.config.latent))}

    def flops_per_step(self):
        b, c = self.config.batch_size, self.config
        (g4, g8, g16), (d16, d8, d4) = c.g_channels, c.d_channels
        rgb = self.image_channels
        g = (flops.conv_transpose(b, 1, 1, 4, 4, c.latent, g4) + flops.conv_transpose(b, 4, 4, 4, 4, g4, g8)
             + flops.conv_transpose(b, 8, 8, 4, 4, g8, g16) + flops.conv_transpose(b, 16, 16, 4, 4, g16, rgb))
        d = (flops.conv2d(b, 16, 16, 4, 4, rgb, d16) + flops.conv2d(b, 8, 8, 4, 4, d16, d8)
             + flops.conv2d(b, 4, 4, 4, 4, d8, d4) + flops.conv2d(b, 1, 1, 4, 4, d4, 1))
        # D update: G forward, D trained on real and fake. G update: G and D forward + backward.
        return g + 2 * flops.train(d) + flops.train(g + d)
