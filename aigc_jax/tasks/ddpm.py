"""`ddpm`: a class-conditional diffusion model on the 32x32 digits (or a colour set), with
classifier-free guidance: the prompt -> image of AI-generated content, digit classes as prompts.

Training (Ho et al. 2020, "simple" loss): for a clean image x0, a time t and noise e,
x_t = sqrt(a_t) x0 + sqrt(1 - a_t) e with the cosine schedule's a_t (Nichol & Dhariwal 2021), and the
U-Net (`models/unet.py`) learns to predict e: mean squared error. With probability
`label_dropout` the class is replaced by the "no class" token, so one network is both the
conditional and the unconditional model (Ho & Salimans 2022). `objective="flow"` trains the same
U-Net by flow matching instead (rectified flow: x_t = (1 - t) x0 + t e on a straight line, the
velocity e - x0 as target, t uniform in [0, 1]).

Sampling (one `lax.scan` over the steps; evaluation and samples use the EMA weights):
- `sampler="dpmpp_2m_sde"` (the default: at 50 steps the closest to the full sampler's FD,
  docs/images.md): DPM-Solver++(2M) SDE (Lu et al. 2022) on `sample_steps` evenly spaced times,
  DDIM at eta = 1 plus a second-order (midpoint) correction of the clean-image prediction along
  log-SNR from the previous step's;
- `sampler="ddim"`: DDIM (Song et al. 2021) on `sample_steps` evenly spaced times; `eta=0` is
  deterministic given the starting noise, `eta=1` adds DDPM's posterior noise;
- `sampler="ddpm"`: the ancestral sampler over all `timesteps` (DDIM with eta=1 at every step is
  exactly DDPM's posterior step);
- flow matching: Euler steps along the predicted velocity, `sample_steps` of them.
The guided prediction is uncond + guidance * (cond - uncond): 0 is the unconditional model, 1 the
conditional one, more pushes samples towards the prompt's class.

Every random draw (times, noise, dropped labels, sampling noise) comes from the per-example keys,
so all four parallel modes compute the same numbers.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from aigc_jax import flops
from aigc_jax.data.text import EVAL_SPLITS
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.unet import UNet
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task, per_example_normal
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, add_schedule_keys, adam_optimizer

IMAGE_SIZE = 32
NUM_CLASSES = 10
TRAJECTORY_POINTS = 10  # columns of the denoising strip: noise on the left, the sample on the right


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> np.ndarray:
    """[timesteps + 1]: the fraction of signal variance left at t = 0..T (1 at t = 0), Nichol &
    Dhariwal's cosine schedule with each step's beta clipped to 0.999."""
    f = np.cos((np.arange(timesteps + 1) / timesteps + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.concatenate([[1.0], np.cumprod(1.0 - betas)]).astype(np.float32)


def clean_image(x, eps, a_t):
    """The clean image x0 that noise `eps` at signal fraction a_t implies, clipped to [-1, 1]."""
    return jnp.clip((x - jnp.sqrt(1.0 - a_t) * eps) / jnp.sqrt(a_t), -1.0, 1.0)


def ddim_move(x, x0, a_t, a_s, eta, z):
    """x at time t moved to an earlier time s (signal fractions a_t < a_s) given a clean image x0:
    x0 at s with the noise that x and x0 imply, plus `eta`-scaled fresh noise `z`."""
    eps = (x - jnp.sqrt(a_t) * x0) / jnp.sqrt(1.0 - a_t)
    sigma = eta * jnp.sqrt((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s))
    return jnp.sqrt(a_s) * x0 + jnp.sqrt(jnp.maximum(1.0 - a_s - sigma**2, 0.0)) * eps + sigma * z


def ddim_step(x, eps, a_t, a_s, eta, z):
    """One DDIM step from t to s: the clean image the predicted noise implies (clipped to [-1, 1]),
    moved to s. At eta = 1 from t to t - 1 this is DDPM's posterior step, mean and variance; at
    eta = 0 it is deterministic."""
    return ddim_move(x, clean_image(x, eps, a_t), a_t, a_s, eta, z)


def log_snr(a):
    """lambda = log(alpha / sigma) of a signal fraction a = alpha^2 (+inf at a = 1, the data)."""
    return 0.5 * (jnp.log(a) - jnp.log1p(-a))


def dpmpp_2m_sde_step(x, eps, a_t, a_s, previous, z):
    """One step of DPM-Solver++(2M) SDE (Lu et al. 2022) from t to s (log-SNR step h): DDIM at eta = 1
    (the reverse SDE solved exactly for a constant clean-image prediction) with the prediction moved
    half a step along log-SNR, extrapolated from `previous` = (the last step's prediction, its h);
    h = 0 there on the first step, which is plain `ddim_step` at eta = 1. Returns (x_s, this step's
    (prediction, h)); at s = 0, x_s is the prediction itself."""
    x0 = clean_image(x, eps, a_t)
    x0_last, h_last = previous
    h = log_snr(a_s) - log_snr(a_t)
    r = jnp.where(h_last > 0, h_last / h, 1.0)
    x0_line = jnp.where(h_last > 0, x0 + 0.5 / r * (x0 - x0_last), x0)
    return jnp.where(a_s >= 1.0, x0, ddim_move(x, x0_line, a_t, a_s, 1.0, z)), (x0, h)


class DDPMTask(Task):
    name = "ddpm"
    summary = "class-conditional diffusion (DDPM/DDIM, or flow matching), U-Net, classifier-free guidance"

    @staticmethod
    def default_config():
        c = base_config()
        c.patch = 2  # 2x2 pixel patches folded into channels: the U-Net runs at 16x16 (4x less work)
        c.channels = (32, 64, 64)  # U-Net widths from 32 / patch pixels down, halving each time
        c.blocks = 1  # residual blocks per resolution on the way down (one more on the way up)
        c.attention_at = (8,)  # resolutions of the U-Net's grid (32 / patch, halving) with self-attention
        c.objective = "eps"  # eps: DDPM noise prediction | flow: flow matching (velocity)
        c.timesteps = 1000  # diffusion steps T (eps)
        c.label_dropout = 0.1  # probability of training a label as "no class" (classifier-free guidance)
        c.guidance = 2.0  # sampling: uncond + guidance * (cond - uncond); 0 unconditional, 1 conditional
        c.sampler = "dpmpp_2m_sde"  # dpmpp_2m_sde | ddim (sample_steps steps) | ddpm (every timestep); flow: Euler
        c.sample_steps = 50  # solver / DDIM / Euler steps for evaluation and samples
        c.eta = 1.0  # DDIM's noise: 1 DDPM's posterior noise, 0 deterministic
        c.prompt = ""  # samples: a class ("7"), or "" for one row per class
        c.steps = 2000
        c.batch_size = 64
        c.learning_rate = 1e-3
        add_schedule_keys(c)
        c.warmup_steps = 100
        c.ema_decay = 0.995  # the engine's EMA of the weights: what is evaluated and sampled
        c.log_every = 100
        c.eval_every = 0  # only at the end: 360 guided samples take 1-2 minutes
        c.eval_batch_size = 180  # the digits' 360 test images in two full batches (no padded samples to draw)
        c.ckpt_every = 500
        c.sample_every = 0  # only at the end
        c.eval_split = "test"  # what evaluation scores: "validation" (train images held out) to choose settings
        c.judge_metrics = True  # eval_fd / eval_diversity / eval_prompt_accuracy with the judge classifier
        return c

    config_ranges = {**SCHEDULE_RANGES, "patch": (1, None), "blocks": (1, None), "timesteps": (2, None), "label_dropout": (0.0, 1.0),
                     "guidance": (0.0, None), "sample_steps": (1, None), "eta": (0.0, 1.0)}
    config_choices = {**SCHEDULE_CHOICES, "objective": ("eps", "flow"), "sampler": ("ddim", "dpmpp_2m_sde", "ddpm"),
                      "eval_split": EVAL_SPLITS}
    resumable_keys = ("guidance", "sampler", "sample_steps", "eta", "prompt")
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "channels": (8,), "blocks": 1, "attention_at": (8,), "batch_size": 8,
                 "sample_steps": 4},
        "cpu": {"judge_metrics": False, "batch_size": 64},
        # DDPM's CIFAR-10 U-Net shape (Ho et al.: 128 channels x (1, 2, 2, 2), attention at 16x16, 2 blocks)
        "gpu": {"judge_metrics": False, "patch": 1, "channels": (128, 256, 256, 256), "blocks": 2, "attention_at": (16,),
                "batch_size": 128, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        c = config
        if IMAGE_SIZE % c.patch:
            raise UserError(f"config.patch={c.patch}: expected a divisor of the image size {IMAGE_SIZE}")
        if (IMAGE_SIZE // c.patch) % 2 ** (len(c.channels) - 1):
            raise UserError(f"config.channels={','.join(map(str, c.channels))}: {len(c.channels)} resolutions halve "
                            f"{IMAGE_SIZE // c.patch} pixels {len(c.channels) - 1} times; expected fewer widths")
        if c.sampler == "ddpm" and c.objective != "eps":
            raise UserError("config.sampler='ddpm' with config.objective='flow'; expected sampler='dpmpp_2m_sde' or "
                            "'ddim' (the ancestral sampler walks the eps schedule; flow matching takes Euler steps)")
        self.prompt_class = self._parse_prompt(c.prompt)

    @staticmethod
    def _parse_prompt(prompt: str) -> int | None:
        if prompt.strip() == "":
            return None
        if not prompt.strip().isdigit() or int(prompt) >= NUM_CLASSES:
            raise UserError(f"prompt={prompt!r}: expected a class, 0-{NUM_CLASSES - 1} (or nothing for every class)")
        return int(prompt)

    @property
    def model(self) -> UNet:
        c = self.config
        return UNet(channels=tuple(c.channels), blocks=c.blocks, attention_at=tuple(c.attention_at),
                    num_classes=NUM_CLASSES, out_channels=self.image_channels, patch=c.patch, dtype=self.compute_dtype)

    def load_data(self):
        return im.load_judged_images(self, IMAGE_SIZE, colour=True)

    def init(self, rng, batch):
        x = batch["image"][:1]
        variables = self.model.init(rng, x, jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
        return create_train_state(self.model, variables, adam_optimizer(self.config))

    # --- training -----------------------------------------------------------------------------

    def noised(self, x0, keys):
        """(x_t, the network's time input in [0, 1], the target) for clean images x0 in [-1, 1]."""
        t_keys, noise_keys = im.split_keys(keys)
        noise = per_example_normal(noise_keys, x0.shape[1:])
        if self.config.objective == "flow":
            t = jax.vmap(lambda k: jax.random.uniform(k))(t_keys)
            s = t[:, None, None, None]
            return (1.0 - s) * x0 + s * noise, t, noise - x0
        T = self.config.timesteps
        step = jax.vmap(lambda k: jax.random.randint(k, (), 1, T + 1))(t_keys)
        a = jnp.asarray(cosine_alpha_bar(T))[step][:, None, None, None]
        return jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * noise, step / T, noise

    def loss(self, params, batch, keys, label_dropout: float):
        x0 = batch["image"] * 2.0 - 1.0
        noise_keys, drop_keys = im.split_keys(keys)
        x_t, time, target = self.noised(x0, noise_keys)
        dropped = jax.vmap(lambda k: jax.random.bernoulli(k, label_dropout))(drop_keys)
        label = jnp.where(dropped, NUM_CLASSES, batch["label"])
        prediction = self.model.apply({"params": params}, x_t, time, label)
        return ((prediction - target) ** 2).reshape(len(x0), -1).mean(-1)  # per example

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            return self.loss(params, batch, batch["key"], self.config.label_dropout).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    # --- sampling -----------------------------------------------------------------------------

    def guided(self, params, x, time, label, guidance: float):
        """The prediction uncond + guidance * (cond - uncond), both halves in one batched call."""
        if guidance == 1.0:
            return self.model.apply({"params": params}, x, time, label)
        both = self.model.apply({"params": params}, jnp.concatenate([x, x]), jnp.concatenate([time, time]),
                                jnp.concatenate([label, jnp.full_like(label, NUM_CLASSES)]))
        cond, uncond = jnp.split(both, 2)
        return uncond + guidance * (cond - uncond)

    def schedule(self) -> tuple[np.ndarray, float]:
        """(times from noise to data [steps + 1], eta) of the configured sampler."""
        c = self.config
        if c.objective == "flow":
            return np.linspace(1.0, 0.0, c.sample_steps + 1, dtype=np.float32), 0.0
        if c.sampler == "ddpm":
            return np.arange(c.timesteps, -1, -1), 1.0
        return np.round(np.linspace(c.timesteps, 0, c.sample_steps + 1)).astype(np.int32), float(c.eta)

    def generate(self, params, label, keys, guidance: float | None = None, trajectory: bool = False, start=None):
        """Images [B, 32, 32, C] in [0, 1] of classes `label` [B] (NUM_CLASSES: no class), one
        per-example key each: it draws the starting noise (unless `start` gives it) and every later
        draw. With `trajectory`, also the images along the way [B, TRAJECTORY_POINTS, 32, 32, C]
        (the first is the noise, the last the sample)."""
        guidance = self.config.guidance if guidance is None else guidance
        shape = (IMAGE_SIZE, IMAGE_SIZE, self.image_channels)

        def draw(i):  # draw i of every example: 0 the starting noise, i > 0 step i's noise
            return per_example_normal(jax.vmap(jax.random.fold_in, (0, None))(keys, i), shape)

        x = draw(0) if start is None else start
        times, eta = self.schedule()
        pairs = jnp.asarray(np.stack([times[:-1], times[1:]], 1))
        flow, T = self.config.objective == "flow", self.config.timesteps
        alpha_bar = jnp.asarray(cosine_alpha_bar(T))

        solver = self.config.sampler == "dpmpp_2m_sde"  # (flow: Euler whatever the sampler)

        def step(carry, inputs):
            x, previous = carry
            i, (t, s) = inputs
            time = jnp.full((len(x),), t / (1.0 if flow else T), jnp.float32)
            prediction = self.guided(params, x, time, label, guidance)
            if flow:
                return (x + (s - t) * prediction, previous), x
            if solver:
                return dpmpp_2m_sde_step(x, prediction, alpha_bar[t], alpha_bar[s], previous, draw(i + 1)), x
            return (ddim_step(x, prediction, alpha_bar[t], alpha_bar[s], eta, draw(i + 1) if eta else 0.0), previous), x

        (x, _), path = lax.scan(step, (x, (jnp.zeros_like(x), jnp.zeros(()))), (jnp.arange(len(pairs)), pairs))
        images = im.to_unit(x)
        if not trajectory:
            return images
        points = np.round(np.linspace(0, len(pairs), TRAJECTORY_POINTS)).astype(int)
        path = jnp.concatenate([path, x[None]])[points]  # [points, B, ...]
        return images, im.to_unit(jnp.swapaxes(path, 0, 1))

    # --- evaluation ---------------------------------------------------------------------------

    def eval_step(self, state, batch, rng):
        """The denoising loss on test images, and as many guided samples as test images, each of the
        class of its test image (so the classes are the test split's): FD, diversity and prompt accuracy."""
        loss_keys, sample_keys = im.split_keys(batch["key"])
        loss = self.loss(state.params, batch, loss_keys, 0.0)
        fake = self.generate(state.params, batch["label"], sample_keys)
        return {"loss": (loss * batch["mask"]).sum(), **im.generator_eval_sums(self, fake, batch, batch["label"])}

    def finalize_eval(self, means):
        return {"loss": means["loss"], **im.generator_metrics(self, means)}

    def sample(self, state, rng, batch):
        """A grid of the prompt's class (8 x 8), or one row of ten per class without a prompt; and the
        denoising strips of one sample per class (noise on the left)."""
        grid_rng, strip_rng = jax.random.split(rng)
        if self.prompt_class is None:
            labels = jnp.repeat(jnp.arange(NUM_CLASSES), 10)
        else:
            labels = jnp.full((64,), self.prompt_class)
        samples, path = self.generate(state.params, labels, jax.random.split(grid_rng, len(labels)), trajectory=True)
        if self.prompt_class is None:
            path = path[::10]  # each row's first sample: one sampling pass (and one compilation) for both
        else:
            _, path = self.generate(state.params, jnp.arange(NUM_CLASSES), jax.random.split(strip_rng, NUM_CLASSES),
                                    trajectory=True)
        return {"samples": samples, "denoising": path.reshape(-1, *path.shape[2:])}

    def flops_per_step(self):
        c, p = self.config, self.config.patch
        return flops.train(unet_flops(c.batch_size, IMAGE_SIZE // p, tuple(c.channels), c.blocks, tuple(c.attention_at),
                                      p * p * self.image_channels))


def unet_flops(batch: int, size: int, channels: tuple, blocks: int, attention_at: tuple, image_channels: int) -> float:
    """Forward FLOPs of `models.unet.UNet` (convolutions, attention, the conditioning's dense layers)."""
    width = 4 * channels[0]

    def block(s, c_in, c_out):
        total = flops.conv2d(batch, s, s, 3, 3, c_in, c_out) + flops.conv2d(batch, s, s, 3, 3, c_out, c_out)
        total += flops.dense(batch, width, 2 * c_out) + (flops.conv2d(batch, s, s, 1, 1, c_in, c_out) if c_in != c_out else 0)
        return total

    def attention(s, c):
        return flops.dense(batch * s * s, c, 4 * c) + flops.attention(batch, s * s, s * s, c) if s in attention_at else 0

    total = flops.dense(batch, channels[0], width) + flops.dense(batch, width, width)
    total += flops.conv2d(batch, size, size, 3, 3, image_channels, channels[0])
    s, c, skips = size, channels[0], [channels[0]]
    for level, features in enumerate(channels):
        for _ in range(blocks):
            total += block(s, c, features) + attention(s, features)
            c = features
            skips.append(c)
        if level < len(channels) - 1:
            s //= 2
            total += flops.conv2d(batch, s, s, 3, 3, c, c)
            skips.append(c)
    total += 2 * block(s, c, c) + flops.dense(batch * s * s, c, 4 * c) + flops.attention(batch, s * s, s * s, c)
    for level, features in reversed(list(enumerate(channels))):
        for _ in range(blocks + 1):
            total += block(s, c + skips.pop(), features) + attention(s, features)
            c = features
        if level > 0:
            s *= 2
            total += flops.conv2d(batch, s, s, 3, 3, c, c)
    return total + flops.conv2d(batch, size, size, 3, 3, c, image_channels)
