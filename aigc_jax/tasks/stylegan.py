"""`stylegan`: a trainable lite StyleGAN2 on the 32x32 digits.

One compiled step: a discriminator update (logistic loss, plus the R1 penalty
gamma/2 * E||grad_x D(x)||^2 on real images every `r1_interval` steps, scaled by the interval:
"lazy" regularisation, StyleGAN2 section B) and then a generator update (non-saturating loss). The
fakes of both use style mixing: per example, with probability `style_mixing`, the ws from a second
z take over from a crossover layer drawn uniformly in [1, num_ws). The exponential moving average
of the generator's params that StyleGAN evaluates and samples is the engine's own
(`config.ema_decay`, default 0.99 here: `engine/state.py` keeps it in the TrainState and
evaluation and samples see it in place of the trained params; it keeps one of D too, unused). The
state also keeps a running mean of the mapped w (`w_avg`, the centre for the truncation trick:
w' = w_avg + psi (w - w_avg)).
"""


import jax
import jax.numpy as jnp
import optax
from flax import struct

from aigc_jax import flops
from aigc_jax.engine import parallel
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import TrainState, create_train_state
from aigc_jax.models.stylegan import StyleDiscriminator, StyleGenerator
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task, per_example_normal

IMAGE_SIZE = 32


@struct.dataclass
class StyleGANState:
    """The two trained networks (with their EMA weights) and the running mean of w."""

    g: TrainState
    d: TrainState
    w_avg: jax.Array  # [w_dim]

    @property
    def step(self):
        return self.d.step


def mixing_crossover(keys: jax.Array, prob: float, num_ws: int) -> jax.Array:
    """Per example: a crossover layer uniform in [1, num_ws) with probability `prob`, else num_ws (no mixing)."""
    def one(key):
        use_key, layer_key = jax.random.split(key)
        layer = jax.random.randint(layer_key, (), 1, num_ws)
        return jnp.where(jax.random.uniform(use_key) < prob, layer, num_ws)

    return jax.vmap(one)(keys)


def mix_styles(w1: jax.Array, w2: jax.Array, crossover: jax.Array, num_ws: int) -> jax.Array:
    """[B, w_dim] x2, crossover [B] -> ws [B, num_ws, w_dim]: layers before the crossover take w1, the rest w2."""
    first = jnp.arange(num_ws)[None, :] < crossover[:, None]
    return jnp.where(first[..., None], w1[:, None], w2[:, None])


def truncate(w: jax.Array, w_avg: jax.Array, psi) -> jax.Array:
    return w_avg + psi * (w - w_avg)


class StyleGANTask(Task):
    name = "stylegan"
    summary = "lite StyleGAN2: mapping net, modulated convs, noise, style mixing, R1, EMA G, truncation (32x32)"
    main_metric = "d_loss"

    @staticmethod
    def default_config():
        c = base_config()
        c.latent = 64  # z
        c.w_dim = 64  # width of the mapped style w
        c.mapping_layers = 4  # layers of the mapping network z -> w
        c.g_channels = (64, 64, 32, 16)  # synthesis widths at 4, 8, 16, 32
        c.d_channels = (16, 32, 64, 64)  # discriminator widths at 32, 16, 8, 4
        c.steps = 1000
        c.batch_size = 32
        c.learning_rate = 2e-3
        c.beta1 = 0.0  # Adam's beta1 (0, as StyleGAN2)
        c.beta2 = 0.99  # Adam's beta2
        c.r1_gamma = 0.1  # R1 penalty weight on real images' input gradients
        c.r1_interval = 1  # lazy R1: the penalty (times the interval) on every k-th step only
        c.style_mixing = 0.9  # per-example probability of mixing two ws
        c.ema_decay = 0.99  # the engine's EMA of the weights, per step: what is evaluated and sampled
        c.w_avg_decay = 0.995  # of the batch mean of w, per step
        c.truncation = 1.0  # psi used by `sample` (evaluation always uses psi = 1)
        c.log_every = 50
        c.eval_every = 250
        c.ckpt_every = 500
        c.sample_every = 500
        c.judge_metrics = True  # eval_fd / eval_diversity in the judge classifier's features (tasks/judge.py)
        return c

    config_ranges = {"latent": (1, None), "w_dim": (1, None), "mapping_layers": (1, None), "beta1": (0.0, 1.0),
                     "beta2": (0.0, 1.0), "r1_gamma": (0.0, None), "r1_interval": (1, None), "style_mixing": (0.0, 1.0),
                     "ema_decay": (0.0, 1.0), "w_avg_decay": (0.0, 1.0), "truncation": (0.0, 1.0)}
    # Benchmarks time the train step: the eval-only judge (tasks/judge.py) is not loaded.
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "latent": 8, "w_dim": 8, "mapping_layers": 1, "g_channels": (8, 4, 4, 4),
                 "d_channels": (4, 4, 4, 8), "batch_size": 8},
        "cpu": {"judge_metrics": False, "batch_size": 32},  # the default model
        "gpu": {"judge_metrics": False, "latent": 512, "w_dim": 512, "mapping_layers": 8,
                "g_channels": (512, 512, 512, 512), "d_channels": (512, 512, 512, 512), "batch_size": 512,
                "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        from aigc_jax.errors import UserError

        for key in ("g_channels", "d_channels"):
            if len(config[key]) != 4:  # 4 -> 32 is three doublings
                raise UserError(f"config.{key}={tuple(config[key])!r}: expected 4 widths (resolutions 4 to 32)")

    @property
    def generator(self):
        c = self.config
        return StyleGenerator(channels=tuple(c.g_channels), w_dim=c.w_dim, mapping_layers=c.mapping_layers,
                              image_channels=self.image_channels, dtype=self.compute_dtype)

    @property
    def discriminator(self):
        return StyleDiscriminator(channels=tuple(self.config.d_channels), dtype=self.compute_dtype)

    @property
    def num_ws(self) -> int:
        return 2 * len(self.config.g_channels)  # StyleGenerator.num_ws: two styled convolutions per resolution

    def load_data(self):
        return im.load_judged_images(self, IMAGE_SIZE, colour=True)

    def init(self, rng, batch):
        g_rng, d_rng = jax.random.split(rng)
        c = self.config
        tx = optax.adam(c.learning_rate, b1=c.beta1, b2=c.beta2)
        g_vars = self.generator.init(g_rng, jnp.zeros((1, c.latent)), jax.random.split(g_rng, 1))
        g = create_train_state(self.generator, g_vars, tx)
        d = create_train_state(self.discriminator, self.discriminator.init(d_rng, batch["image"][:1]), tx)
        return StyleGANState(g=g, d=d, w_avg=jnp.zeros((c.w_dim,)))

    # --- the generator's pieces, as pure functions of its params ---

    def map(self, params, z):
        return self.generator.apply({"params": params}, z, method=StyleGenerator.map)

    def synthesize(self, params, ws, noise_keys):
        """ws [B, num_ws, w_dim] -> images in [-1, 1] (tanh-free, as StyleGAN; clipped by `to_unit`)."""
        return self.generator.apply({"params": params}, ws, noise_keys, method=StyleGenerator.synthesize)

    def broadcast_ws(self, w):
        return jnp.repeat(w[:, None], self.num_ws, axis=1)

    def mixed_fakes(self, params, keys):
        """Training fakes with style mixing, all randomness from the per-example keys; also the first ws."""
        z1_keys, z2_keys, mix_keys, noise_keys = im.split_keys(keys, 4)
        w1 = self.map(params, per_example_normal(z1_keys, (self.config.latent,)))
        w2 = self.map(params, per_example_normal(z2_keys, (self.config.latent,)))
        crossover = mixing_crossover(mix_keys, self.config.style_mixing, self.num_ws)
        return self.synthesize(params, mix_styles(w1, w2, crossover, self.num_ws), noise_keys), w1

    def train_step(self, state, batch, rng):
        c = self.config
        real = batch["image"] * 2.0 - 1.0
        d_keys, g_keys = im.split_keys(batch["key"])
        fake_d, _ = self.mixed_fakes(state.g.params, d_keys)
        fake_d = jax.lax.stop_gradient(fake_d)

        def d_logits(params, x):
            return state.d.apply_fn({"params": params}, x)

        def d_loss_fn(params, with_r1):
            real_logits, fake_logits = d_logits(params, real), d_logits(params, fake_d)
            loss = jax.nn.softplus(fake_logits).mean() + jax.nn.softplus(-real_logits).mean()
            # ||dD(x)/dx||^2 per real image; D treats examples independently, so one grad of the sum.
            grads = jax.grad(lambda x: d_logits(params, x).sum())(real)
            r1 = jnp.where(with_r1, jnp.square(grads).reshape(grads.shape[0], -1).sum(-1).mean(), 0.0)
            loss = loss + 0.5 * c.r1_gamma * c.r1_interval * r1
            return loss, (real_logits.mean(), fake_logits.mean(), r1)

        # Lazy R1 as a 0/1 weight, not a lax.cond: on XLA:CPU a conditional around these convolutions
        # made the whole step ~7x slower, while the double backward pass itself is cheap here.
        regularise = ((state.d.step + 1) % c.r1_interval == 0) & (c.r1_gamma > 0)  # engine steps k, 2k, ...
        (d_loss, (d_real, d_fake, r1)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d.params, regularise)
        d = state.d.apply_gradients(grads=grads)

        def g_loss_fn(params):
            fake, w = self.mixed_fakes(params, g_keys)
            return jax.nn.softplus(-d_logits(d.params, fake)).mean(), w  # non-saturating

        (g_loss, w), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g.params)
        g = state.g.apply_gradients(grads=g_grads)
        w_mean = parallel.data_mean(jax.lax.stop_gradient(w).mean(0))  # the same on every replica
        new = StyleGANState(g=g, d=d,
                            w_avg=state.w_avg * c.w_avg_decay + (1.0 - c.w_avg_decay) * w_mean)
        metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_real_logit": d_real, "d_fake_logit": d_fake,
                   "r1": r1, "r1_applied": regularise.astype(jnp.float32)}
        return new, metrics

    def generate(self, state, z, noise_keys, psi=1.0):
        """The generator's images in [0, 1] for z [B, latent], truncated towards w_avg by psi (the EMA
        generator's when called on the engine's evaluation view of the state)."""
        w = truncate(self.map(state.g.params, z), state.w_avg, psi)
        return im.to_unit(self.synthesize(state.g.params, self.broadcast_ws(w), noise_keys))

    def mean_image(self, state, noise_key):
        """G(w_avg): what every sample becomes at psi = 0."""
        ws = self.broadcast_ws(state.w_avg[None])
        return im.to_unit(self.synthesize(state.g.params, ws, noise_key[None]))[0]

    def eval_step(self, state, batch, rng):
        """As many EMA-generator fakes (psi = 1, random noise) as real test images: pixel statistics
        and (config.judge_metrics) the judge classifier's features and class probabilities."""
        z_keys, noise_keys = im.split_keys(batch["key"])
        fake = self.generate(state, per_example_normal(z_keys, (self.config.latent,)), noise_keys)
        return im.generator_eval_sums(self, fake, batch)

    def finalize_eval(self, means):
        return im.generator_metrics(self, means)

    def sample(self, state, rng, batch):
        """A grid at psi = config.truncation; a truncation figure (each row one z, psi 1.0 .. 0.0 left
        to right); a latent interpolation strip (each row a slerp between two z). One fixed noise
        draw is shared by every image, so images differ only through their w."""
        z_rng, trunc_rng, interp_rng, noise_rng = jax.random.split(rng, 4)
        latent, psi = self.config.latent, self.config.truncation
        noise = jnp.broadcast_to(noise_rng, (64, *noise_rng.shape))
        grid = self.generate(state, per_example_normal(jax.random.split(z_rng, 64), (latent,)), noise, psi)
        rows = per_example_normal(jax.random.split(trunc_rng, 8), (latent,))  # 8 z, each at 8 psi values
        psis = jnp.tile(jnp.linspace(1.0, 0.0, 8), 8)[:, None]
        trunc = self.generate(state, jnp.repeat(rows, 8, axis=0), noise, psis)
        interp = self.generate(state, im.interpolation_latents(interp_rng, latent, 8, 8), noise, psi)
        return {"samples": grid, "truncation": trunc, "interpolation": interp}

    def flops_per_step(self):
        c, b = self.config, self.config.batch_size
        g = self.generator_flops(b)
        d = self.discriminator_flops(b)
        # D update: G forward, D trained on real and fake, and every r1_interval-th step the R1 double
        # backward on the reals (about two more D training passes). G update: G and D forward + backward.
        r1 = 2 * flops.train(d) / c.r1_interval if c.r1_gamma > 0 else 0.0
        return g + 2 * flops.train(d) + r1 + flops.train(g + d)

    def generator_flops(self, b: int) -> float:
        c = self.config
        total = 2 * flops.mlp(b, (c.latent, *([c.w_dim] * c.mapping_layers)))  # two zs for mixing
        widths = tuple(c.g_channels)
        convs = [(4, widths[0], widths[0])]
        for i, width in enumerate(widths[1:], start=1):
            convs += [(4 * 2**i, widths[i - 1], width), (4 * 2**i, width, width)]
        for size, c_in, c_out in convs:
            total += flops.conv2d(b, size, size, 3, 3, c_in, c_out) + flops.dense(b, c.w_dim, c_in)
        for i, width in enumerate(widths):  # toRGB
            size = 4 * 2**i
            total += flops.conv2d(b, size, size, 1, 1, width, 1) + flops.dense(b, c.w_dim, width)
        return total

    def discriminator_flops(self, b: int) -> float:
        widths = tuple(self.config.d_channels)
        total = flops.conv2d(b, IMAGE_SIZE, IMAGE_SIZE, 1, 1, 1, widths[0])
        size = IMAGE_SIZE
        for prev, width in zip(widths[:-1], widths[1:]):
            total += flops.conv2d(b, size, size, 3, 3, prev, prev)  # conv at this size
            size //= 2
            total += flops.conv2d(b, size, size, 3, 3, prev, width) + flops.conv2d(b, size, size, 1, 1, prev, width)
        total += flops.conv2d(b, size, size, 3, 3, widths[-1], widths[-1])
        return total + flops.mlp(b, (size * size * widths[-1], widths[-1], 1))
