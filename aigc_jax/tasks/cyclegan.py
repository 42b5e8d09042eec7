"""`cyclegan`: unpaired translation between handwritten digits and synthetic printed digits.

Domain A is `config.dataset` (the real UCI `digits`), domain B `config.dataset_b` (the synthetic
`printed_digits`, rendered from installed fonts). Two ResNet generators, G: A -> B and F: B -> A,
and two PatchGAN discriminators, D_A and D_B, with instance norm (Zhu et al. 2017). Losses as in
the paper: least-squares GAN, cycle consistency |F(G(a)) - a| + |G(F(b)) - b| weighted by
`cycle_weight`, identity |G(b) - b| + |F(a) - a| weighted by `identity_weight` (the paper's 0.5 x
cycle weight). The discriminators learn from an image history pool (`tasks/image_pool.py`) kept
in the train state. One optimizer (Adam, beta1 0.5) for both generators, one for both
discriminators; constant learning rate, then linear decay to 0 from `decay_from` x steps.

Colour: each domain keeps its dataset's channels (`--config.dataset=synthetic_images` or cifar10
in colour); beside a colour domain a grey one is shown as three equal channels, and G, F, the
discriminators and the image pools work in that many channels.

Unpaired batches: each train example holds one image of each domain, paired by a fixed random
permutation of domain B (from the seed), and the engine's sampler reshuffles those rows every
epoch, so a batch is a pure function of (seed, step) and resume is exact.

Evaluation (the judge classifier of `tasks/judge.py` as referee): `eval_class_kept_ab` is the
fraction of domain-A test images whose judge class survives translation (judge(G(a)) ==
judge(a)), `eval_class_kept_ba` likewise for F on domain B; `eval_label_kept_*` compares with the
true label instead; `eval_judge_accuracy_a/b` is the judge's accuracy on the real images of each
domain (context: how well the digits judge reads printed digits at all); `eval_fd_ab/ba` is the
judge-feature Fréchet distance of the translations to the real test images of the target domain;
`eval_cycle_ab/ba` the mean absolute reconstruction error per pixel in [0, 1].

The trivial baseline is the identity translator (G(a) = a): it keeps every class (class_kept 1.0)
and reconstructs perfectly (cycle 0), so those metrics alone reward doing nothing. What it cannot
do is look like the other domain: `eval_fd_identity` is its FD, real A against real B test
images, and a translator earns its class_kept only with `fd_ab` and `fd_ba` below it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from aigc_jax import flops
from aigc_jax.data.images import load_image_splits, with_channels
from aigc_jax.data.splits import Splits
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import TrainState
from aigc_jax.eval.frechet import frechet_from_sums
from aigc_jax.tasks.judge import judge_outputs, judge_params
from aigc_jax.models.cyclegan import PatchDiscriminator, ResNetGenerator
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task
from aigc_jax.tasks.image_pool import ImagePool, empty_pool, query_batch

SAMPLE_TRIPTYCHS = 27  # input | translated | reconstructed, 3 per row of a 9x9 grid


@struct.dataclass
class CycleGANState:
    gen: TrainState  # params {"g": A -> B, "f": B -> A}
    disc: TrainState  # params {"a": D_A, "b": D_B}
    pool_a: ImagePool  # past fakes F(b), shown to D_A
    pool_b: ImagePool  # past fakes G(a), shown to D_B

    @property
    def step(self):
        return self.gen.step


def lsgan(scores, target: float):
    return jnp.mean((scores - target) ** 2)


def l1(x, y):
    return jnp.mean(jnp.abs(x - y))


def pair_rows(n_a: int, n_b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row r holds A example r % n_a and B example perm[r] % n_b: every image of both domains
    appears, and which B image sits beside which A image is random (the data stay unpaired)."""
    n = max(n_a, n_b)
    return np.arange(n) % n_a, np.random.default_rng([seed, 1]).permutation(n) % n_b


class CycleGANTask(Task):
    name = "cyclegan"
    summary = "CycleGAN: handwritten <-> synthetic printed digits, ResNet G, PatchGAN D, LSGAN + cycle + identity"
    main_metric = "cycle_loss"

    @staticmethod
    def default_config():
        c = base_config()
        c.dataset_b = "printed_digits"  # domain B; domain A is config.dataset (digits)
        c.g_width = 16  # generator base width
        c.g_blocks = 3  # generator residual blocks
        c.d_width = 32  # PatchGAN discriminator base width
        c.d_layers = 2  # PatchGAN discriminator stride-2 layers
        c.cycle_weight = 10.0  # weight of the cycle-consistency loss
        c.identity_weight = 5.0  # the paper's 0.5 x cycle_weight; 0 skips the identity passes
        c.pool_size = 50  # image pool of past fakes shown to D (0 = none)
        c.decay_from = 0.5  # fraction of steps after which the learning rate falls linearly to 0
        c.steps = 400
        c.batch_size = 8
        c.learning_rate = 2e-4
        c.beta1 = 0.5  # Adam's beta1 (0.5, as CycleGAN)
        c.log_every = 25
        c.eval_every = 200
        c.ckpt_every = 200
        c.sample_every = 200
        c.judge_metrics = True  # eval_class_kept_* etc. need the judge classifier (tasks/judge.py)
        return c

    config_ranges = {"g_width": (1, None), "g_blocks": (0, None), "d_width": (1, None), "d_layers": (1, 4),
                     "cycle_weight": (0.0, None), "identity_weight": (0.0, None), "pool_size": (0, None),
                     "decay_from": (0.0, 1.0), "beta1": (0.0, 1.0)}
    # Benchmarks time the train step: the eval-only judge is not loaded.
    benchmark_presets = {
        "tiny": {"judge_metrics": False, "g_width": 4, "g_blocks": 1, "d_width": 4, "d_layers": 1, "identity_weight": 0.0,
                 "pool_size": 4, "batch_size": 8},
        "cpu": {"judge_metrics": False, "g_width": 16, "g_blocks": 3, "d_width": 32, "batch_size": 8},
        "gpu": {"judge_metrics": False, "g_width": 64, "g_blocks": 9, "d_width": 64, "batch_size": 512,
                "dtype": "bfloat16"},
    }

    @property
    def generator(self):
        return ResNetGenerator(width=self.config.g_width, blocks=self.config.g_blocks, channels=self.image_channels,
                               dtype=self.compute_dtype)

    @property
    def discriminator(self):
        return PatchDiscriminator(width=self.config.d_width, layers=self.config.d_layers, dtype=self.compute_dtype)

    def load_data(self):
        c = self.config
        constants = {"judge": judge_params(c.dataset, c.data_dir)} if c.judge_metrics else {}
        # Domain A at the size it is stored at (32x32 for cifar10), domain B resized to match.
        a = load_image_splits(c.dataset, c.data_dir, None, num_examples=c.num_examples, colour=True)
        size = int(a.test["image"].shape[1])
        b = load_image_splits(c.dataset_b, c.data_dir, size, num_examples=c.num_examples, colour=True)
        if "image_size" in a.constants:  # the loader's rule: a constant only for sizes other than 28
            constants["image_size"] = size
        # Both domains in the same channels (G and F map C -> C): a grey domain beside a colour one
        # is shown as three equal channels.
        channels = max(a.train["image"].shape[-1], b.train["image"].shape[-1])
        if channels != 1:
            constants["image_channels"] = channels
        a, b = (with_channels(split, channels) for split in (a, b))
        ia, ib = pair_rows(a.num_train, b.num_train, c.seed)
        train = {"image": a.train["image"][ia], "image_b": b.train["image"][ib]}
        # Test rows: A example r % n_a and B example r % n_b; `valid_*` marks each image's first
        # appearance, so every metric counts each test image of a domain exactly once.
        n = max(a.num_test, b.num_test)
        rows = np.arange(n)
        test = {"image": a.test["image"][rows % a.num_test], "label": a.test["label"][rows % a.num_test],
                "image_b": b.test["image"][rows % b.num_test], "label_b": b.test["label"][rows % b.num_test],
                "valid_a": (rows < a.num_test).astype(np.float32), "valid_b": (rows < b.num_test).astype(np.float32)}
        return Splits(train=train, test=test, constants=constants)

    def init(self, rng, batch):
        c = self.config
        keys = jax.random.split(rng, 4)
        x = batch["image"][:1]  # an argument, not a constant: XLA would fold the whole forward pass
        gen_params = {"g": self.generator.init(keys[0], x)["params"], "f": self.generator.init(keys[1], x)["params"]}
        disc_params = {"a": self.discriminator.init(keys[2], x)["params"],
                       "b": self.discriminator.init(keys[3], x)["params"]}
        decay_start = int(c.steps * c.decay_from)
        schedule = optax.join_schedules(
            [optax.constant_schedule(c.learning_rate),
             optax.linear_schedule(c.learning_rate, 0.0, max(c.steps - decay_start, 1))], [decay_start])
        tx = optax.adam(schedule, b1=c.beta1)
        shape = (self.image_size,) * 2 + (self.image_channels,)
        return CycleGANState(
            gen=TrainState.create(apply_fn=self.generator.apply, params=gen_params, tx=tx),
            disc=TrainState.create(apply_fn=self.discriminator.apply, params=disc_params, tx=tx),
            pool_a=empty_pool(c.pool_size, shape), pool_b=empty_pool(c.pool_size, shape))

    def translate(self, params, x):
        """The generator with these params on images in [-1, 1]."""
        return self.generator.apply({"params": params}, x)

    def score(self, params, x):
        return self.discriminator.apply({"params": params}, x)

    def train_step(self, state, batch, rng):
        c = self.config
        real_a, real_b = batch["image"] * 2.0 - 1.0, batch["image_b"] * 2.0 - 1.0
        keys_a, keys_b = im.split_keys(batch["key"])
        d = state.disc.params

        def gen_loss_fn(p):
            fake_b, fake_a = self.translate(p["g"], real_a), self.translate(p["f"], real_b)
            gan = lsgan(self.score(d["b"], fake_b), 1.0) + lsgan(self.score(d["a"], fake_a), 1.0)
            cycle = l1(self.translate(p["f"], fake_b), real_a) + l1(self.translate(p["g"], fake_a), real_b)
            identity = (l1(self.translate(p["g"], real_b), real_b) + l1(self.translate(p["f"], real_a), real_a)
                        if c.identity_weight else jnp.zeros(()))
            loss = gan + c.cycle_weight * cycle + c.identity_weight * identity
            return loss, (fake_a, fake_b, gan, cycle, identity)

        (g_loss, (fake_a, fake_b, gan, cycle, identity)), g_grads = jax.value_and_grad(
            gen_loss_fn, has_aux=True)(state.gen.params)
        gen = state.gen.apply_gradients(grads=g_grads)

        # The discriminators judge this step's fakes mixed with older ones from the pools.
        pool_a, shown_a = query_batch(state.pool_a, jax.lax.stop_gradient(fake_a), keys_a)
        pool_b, shown_b = query_batch(state.pool_b, jax.lax.stop_gradient(fake_b), keys_b)

        def disc_loss_fn(p):
            loss_a = 0.5 * (lsgan(self.score(p["a"], real_a), 1.0) + lsgan(self.score(p["a"], shown_a), 0.0))
            loss_b = 0.5 * (lsgan(self.score(p["b"], real_b), 1.0) + lsgan(self.score(p["b"], shown_b), 0.0))
            return loss_a + loss_b, (loss_a, loss_b)

        (d_loss, (d_a, d_b)), d_grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(d)
        disc = state.disc.apply_gradients(grads=d_grads)
        metrics = {"g_loss": g_loss, "gan_loss": gan, "cycle_loss": cycle, "identity_loss": identity,
                   "d_loss": d_loss, "d_a_loss": d_a, "d_b_loss": d_b}
        return CycleGANState(gen=gen, disc=disc, pool_a=pool_a, pool_b=pool_b), metrics

    def translations(self, state, a, b):
        """Images in [0, 1] -> (G(a), F(G(a)), F(b), G(F(b))) in [0, 1]."""
        p = state.gen.params
        ab = self.translate(p["g"], a * 2.0 - 1.0)
        ba = self.translate(p["f"], b * 2.0 - 1.0)
        return tuple(im.to_unit(x) for x in (ab, self.translate(p["f"], ab), ba, self.translate(p["g"], ba)))

    def eval_step(self, state, batch, rng):
        a, b = batch["image"], batch["image_b"]
        ab, aba, ba, bab = self.translations(state, a, b)
        ma, mb = batch["mask"] * batch["valid_a"], batch["mask"] * batch["valid_b"]
        per_image = lambda x, y: jnp.abs(x - y).reshape(x.shape[0], -1).mean(-1)
        sums = {"count_a": ma.sum(), "count_b": mb.sum(),
                "cycle_ab": (per_image(aba, a) * ma).sum(), "cycle_ba": (per_image(bab, b) * mb).sum()}
        if self.config.judge_metrics:
            judge = im.require_judge(self)
            classify = lambda x: judge_outputs(judge, im.to_judge_input(judge, x))
            (la, fa), (lb, fb), (lab, fab), (lba, fba) = (classify(x) for x in (a, b, ab, ba))
            ca, cb, cab, cba = (jnp.argmax(x, -1) for x in (la, lb, lab, lba))
            hits = lambda x, y, m: ((x == y) * m).sum()
            sums.update({
                "kept_ab": hits(cab, ca, ma), "kept_ba": hits(cba, cb, mb),
                "label_kept_ab": hits(cab, batch["label"], ma), "label_kept_ba": hits(cba, batch["label_b"], mb),
                "judge_accuracy_a": hits(ca, batch["label"], ma), "judge_accuracy_b": hits(cb, batch["label_b"], mb),
                **im.feature_sums("judge_a", fa, ma), **im.feature_sums("judge_b", fb, mb),
                **im.feature_sums("judge_ab", fab, ma), **im.feature_sums("judge_ba", fba, mb)})
        return sums

    def finalize_eval(self, means):
        # The engine divides by the number of test rows; each domain's sums are over its own images.
        na, nb = means["count_a"], means["count_b"]
        out = {"cycle_ab": means["cycle_ab"] / na, "cycle_ba": means["cycle_ba"] / nb}
        if self.config.judge_metrics:
            out.update({"class_kept_ab": means["kept_ab"] / na, "class_kept_ba": means["kept_ba"] / nb,
                        "label_kept_ab": means["label_kept_ab"] / na, "label_kept_ba": means["label_kept_ba"] / nb,
                        "judge_accuracy_a": means["judge_accuracy_a"] / na,
                        "judge_accuracy_b": means["judge_accuracy_b"] / nb})
            per_domain = {f"{k}_{s}": means[f"judge_{k}_{s}"] / n for k, n in (("a", na), ("b", nb), ("ab", na), ("ba", nb))
                          for s in ("sum", "outer")}
            out["fd_ab"] = frechet_from_sums(per_domain, "ab", "b")  # G(a) vs real printed
            out["fd_ba"] = frechet_from_sums(per_domain, "ba", "a")  # F(b) vs real handwritten
            out["fd_identity"] = frechet_from_sums(per_domain, "a", "b")  # the identity translator's
        return out

    def sample(self, state, rng, batch):
        rows = jnp.arange(SAMPLE_TRIPTYCHS) % batch["image"].shape[0]
        a, b = jnp.take(batch["image"], rows, axis=0), jnp.take(batch["image_b"], rows, axis=0)
        ab, aba, ba, bab = self.translations(state, a, b)
        triptych = lambda *xs: jnp.stack(xs, axis=1).reshape(-1, *a.shape[1:])  # [3N, H, W, C], row-major
        return {"hand_to_printed": triptych(a, ab, aba), "printed_to_hand": triptych(b, ba, bab)}

    def _generator_flops(self, batch: int) -> float:
        c, s = self.config, self.image_size
        w = c.g_width
        total = flops.conv2d(batch, s, s, 7, 7, self.image_channels, w)
        total += flops.conv2d(batch, s // 2, s // 2, 3, 3, w, 2 * w) + flops.conv2d(batch, s // 4, s // 4, 3, 3, 2 * w, 4 * w)
        total += c.g_blocks * 2 * flops.conv2d(batch, s // 4, s // 4, 3, 3, 4 * w, 4 * w)
        total += flops.conv_transpose(batch, s // 4, s // 4, 3, 3, 4 * w, 2 * w) + flops.conv_transpose(batch, s // 2, s // 2, 3, 3, 2 * w, w)
        return total + flops.conv2d(batch, s, s, 7, 7, w, self.image_channels)

    def _discriminator_flops(self, batch: int) -> float:
        c = self.config
        size, width_in, total = self.image_size, self.image_channels, 0.0
        widths = [c.d_width * 2 ** min(i, 3) for i in range(c.d_layers + 1)]
        for i, width in enumerate(widths):
            size = size // 2 if i < c.d_layers else size - 1  # 4x4, padding 1: stride 2 halves, stride 1 loses 1
            total += flops.conv2d(batch, size, size, 4, 4, width_in, width)
            width_in = width
        return total + flops.conv2d(batch, size - 1, size - 1, 4, 4, width_in, 1)

    def flops_per_step(self):
        b = self.config.batch_size
        g, d = self._generator_flops(b), self._discriminator_flops(b)
        gen_passes = 4 + (2 if self.config.identity_weight else 0)  # translations, cycles, identities
        # Generator update: its passes and D_A, D_B on the fakes, trained; D update: 4 D passes.
        return flops.train(gen_passes * g + 2 * d) + flops.train(4 * d)
