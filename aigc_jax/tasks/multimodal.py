"""`multimodal`: the fusion model of seed 003 on digits paired with synthetic captions.

Text encoder + image encoder -> feature fusion ([i, t, i * t]) -> MLP head -> one match logit,
trained with binary cross-entropy to tell a matching caption (`data/digit_captions.py`) from a
non-matching one. In training both are drawn from `batch["key"]`, so they are the same in every
parallel mode and on resume: the matching caption is the image's digit in a training template
drawn anew each time the image is seen, the non-matching one another digit (label + 1..9 mod 10)
in an independently drawn template. Evaluation scores the test split's fixed pairs instead. Matching and
non-matching captions are alike in their marginals (uniform digits, the same templates), so
neither modality alone beats chance.

Metrics: `eval_match_accuracy` (test images with their caption and one non-matching caption each,
threshold 0, chance 0.5) and `eval_zero_shot_accuracy`: the digit whose held-out-template prompt
scores highest (chance 0.1). `CaptionTask` holds what this family and `clip` share.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aigc_jax import flops
from aigc_jax.data import digit_captions as dc
from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.multimodal import FusionMatcher
from aigc_jax.tasks import images as im
from aigc_jax.tasks.base import Task

IMAGE_SIZE = 28
SAMPLE_IMAGES = 64


def caption_config():
    """The config keys both caption families share (the seed model's sizes)."""
    c = base_config()
    c.channels = (32, 64)  # image encoder: the digits CNN
    c.hidden = 64  # image encoder width
    c.text_width = 64  # text encoder width
    c.embed = 64  # shared embedding width
    c.caption_seed = 0  # which template captions which image (data/digit_captions.py)
    c.steps = 800
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.log_every = 50
    c.eval_every = 200
    c.ckpt_every = 400
    c.sample_every = 400
    return c


def cnn_forward_flops(batch: int, channels, hidden: int, out: int) -> float:
    """The digits CNN (3x3 'SAME' convs, 2x2 pools, two dense layers) at 28x28."""
    size, c_in, total = IMAGE_SIZE, 1, 0.0
    for ch in channels:
        total += flops.conv2d(batch, size, size, 3, 3, c_in, ch)
        size, c_in = size // 2, ch
    return total + flops.mlp(batch, (size * size * c_in, hidden, out))


class CaptionTask(Task):
    """Digits images with synthetic captions: data, prompts, samples and FLOPs both families share."""

    config_ranges = {"hidden": (1, None), "text_width": (1, None), "embed": (1, None),
                     "caption_seed": (0, 2**31 - 1)}
    main_metric = "loss"

    # The training templates [T, 10, L] and the zero-shot prompts (held-out template) [10, L].
    train_table = dc.template_table(dc.TRAIN_TEMPLATES)
    prompts = dc.template_table(dc.HELD_OUT_TEMPLATES)[0]

    def load_data(self):
        return dc.with_captions(load_image_splits(self.config.dataset, self.config.data_dir, IMAGE_SIZE),
                                self.config.caption_seed)

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["image"][:1], batch["caption"][:1])
        return create_train_state(self.model, variables, optax.adam(self.config.learning_rate))

    def drawn_captions(self, keys, digits):
        """[B, L] captions of `digits` in a training template drawn from each example's key.

        Training redraws an image's template every time it is seen: with fixed pairs the models
        learn which template goes with which training image, which says nothing about the digit."""
        template = jax.vmap(lambda k: jax.random.randint(k, (), 0, len(dc.TRAIN_TEMPLATES)))(keys)
        return jnp.asarray(self.train_table)[template, digits]

    def sample_images(self, batch):
        """The first 64 test examples (repeated if there are fewer): images, labels, captions."""
        idx = jnp.arange(SAMPLE_IMAGES) % batch["image"].shape[0]
        return {k: jnp.take(batch[k], idx, axis=0) for k in ("image", "label", "caption")}

    def text_flops(self, n: int) -> float:
        c = self.config
        return flops.mlp(n, (c.text_width, c.text_width, c.embed))

    def image_flops(self, n: int) -> float:
        c = self.config
        return cnn_forward_flops(n, c.channels, c.hidden, c.embed)


def prediction_lines(predicted, labels, describe) -> str:
    """One line per sample image, row by row as in the grid; '!' marks a wrong digit."""
    lines = []
    for i, (p, t) in enumerate(zip(np.asarray(predicted).tolist(), np.asarray(labels).tolist())):
        lines.append(f"row {i // 8} col {i % 8}: {describe(i, p)}{'' if p == t else f'  ! (is {t})'}")
    return "\n".join(lines) + "\n"


class MultimodalTask(CaptionTask):
    name = "multimodal"
    summary = "text + image encoders -> feature fusion -> match head, synthetic digit captions (seed 003)"
    main_metric = "loss"
    config_ranges = {**CaptionTask.config_ranges, "fusion_hidden": (1, None)}
    benchmark_presets = {
        "tiny": {"channels": (4, 8), "hidden": 16, "text_width": 16, "embed": 16, "fusion_hidden": 16,
                 "batch_size": 8},
        "cpu": {"channels": (32, 64), "hidden": 64, "text_width": 64, "embed": 64, "fusion_hidden": 64, "batch_size": 64},
        "gpu": {"channels": (128, 256), "hidden": 1024, "text_width": 512, "embed": 512, "fusion_hidden": 1024,
                "batch_size": 1024, "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = caption_config()
        c.fusion_hidden = 64  # fusion MLP hidden width
        return c

    @property
    def model(self):
        c = self.config
        return FusionMatcher(vocab_size=len(dc.VOCAB), channels=tuple(c.channels), hidden=c.hidden,
                             text_width=c.text_width, embed=c.embed, fusion_hidden=c.fusion_hidden,
                             dtype=self.compute_dtype)

    def negatives(self, keys, labels):
        """[B, L] captions of another digit: digit (label + 1..9 mod 10) and template from the keys."""
        digit_keys, template_keys = im.split_keys(keys)
        shift = jax.vmap(lambda k: jax.random.randint(k, (), 1, 10))(digit_keys)
        return self.drawn_captions(template_keys, (labels + shift) % 10)

    def _pair_losses(self, params, batch, positives):
        """Per-example loss and accuracy on (image, `positives`) and (image, a drawn negative)."""
        negative_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(batch["key"])
        pos, neg = self.model.apply({"params": params}, batch["image"], positives,
                                    self.negatives(negative_keys, batch["label"]), method=FusionMatcher.match_pair)
        loss = (optax.sigmoid_binary_cross_entropy(pos, jnp.ones_like(pos))
                + optax.sigmoid_binary_cross_entropy(neg, jnp.zeros_like(neg))) / 2
        correct = ((pos > 0).astype(jnp.float32) + (neg < 0).astype(jnp.float32)) / 2
        return loss, correct

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            loss, correct = self._pair_losses(params, batch, self.drawn_captions(batch["key"], batch["label"]))
            return loss.mean(), correct.mean()

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "match_accuracy": accuracy}

    def prompt_scores(self, params, images):
        """[B, 10] match logits of each image with the held-out template's caption of every digit."""
        def scores(m, images):
            return m.score(m.encode_image(images)[:, None, :], m.encode_text(jnp.asarray(self.prompts))[None])
        return self.model.apply({"params": params}, images, method=scores)

    def eval_step(self, state, batch, rng):
        loss, correct = self._pair_losses(state.params, batch, batch["caption"])  # the test pairs as given
        zero_shot = (self.prompt_scores(state.params, batch["image"]).argmax(-1) == batch["label"])
        m = batch["mask"]
        return {"loss": (loss * m).sum(), "match_accuracy": (correct * m).sum(),
                "zero_shot_accuracy": (zero_shot * m).sum()}

    def sample(self, state, rng, batch):
        s = self.sample_images(batch)
        own = self.model.apply({"params": state.params}, s["image"], s["caption"])
        return {"test_images": s["image"], "label": s["label"], "caption": s["caption"],
                "match_probability": jax.nn.sigmoid(own),
                "predicted": self.prompt_scores(state.params, s["image"]).argmax(-1)}

    def render_samples(self, outputs):
        captions = [" ".join(dc.VOCAB.decode(c)) for c in outputs["caption"]]

        def describe(i, p):
            return (f"best prompt {dc.caption(p, dc.HELD_OUT_TEMPLATES[0])!r}; "
                    f"P(match {captions[i]!r}) = {outputs['match_probability'][i]:.2f}")

        header = ("per test image: the held-out prompt the fusion head scores highest, and its match "
                  "probability with the image's own caption\n")
        text = header + prediction_lines(outputs["predicted"], outputs["label"], describe)
        return {"test_images": outputs["test_images"], "predictions": text}

    def flops_per_step(self):
        b, c = self.config.batch_size, self.config
        head = flops.mlp(2 * b, (3 * c.embed, c.fusion_hidden, 1))
        return flops.train(self.image_flops(b) + self.text_flops(2 * b) + head)
