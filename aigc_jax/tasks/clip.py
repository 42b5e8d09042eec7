"""`clip`: a CLIP-style dual encoder on digits paired with synthetic captions.

Image and text encoders map into one space (unit vectors); the loss is the symmetric InfoNCE of
CLIP over the *global* batch: cross-entropy of every image against every caption and of every
caption against every image, logits = learned scale (exp of a parameter, clamped at 100) x
cosine similarity. Under shard_map/pmap each device holds a slice of the batch, so it gathers the
embeddings of all devices (`parallel.data_all_gather`) and scores its own rows against them: the
same loss as under jit, whose mean over devices is the global mean. A training image's caption is
its digit in a template drawn from `batch["key"]` each time it is seen (fixed pairs let the model
memorise which template goes with which image). Captions are templated, so a batch holds several
captions of the same digit; they count as negatives, as CLIP's duplicates do.

Metrics (test split):
- `eval_zero_shot_accuracy`: each image is classified as the digit whose prompt (the held-out
  template, never seen in training, e.g. "a photo of the number seven") is nearest; chance 0.1.
- `eval_recall_at_1`: image -> text retrieval. The gallery is the test split's own captions, one
  per test image (360, training templates, as paired by `caption_seed`), embedded whole in every
  eval batch; a query image's top-1 caption is a hit when it names the image's digit. The captions
  say nothing but the digit, so identical-text captions are indistinguishable and relevance is by
  class, as in class-level caption retrieval; chance is about 0.1.
"""

import jax
import jax.numpy as jnp
import optax
from jax import lax

from aigc_jax import flops
from aigc_jax.data import digit_captions as dc
from aigc_jax.engine import parallel
from aigc_jax.models.multimodal import DualEncoder
from aigc_jax.tasks.multimodal import CaptionTask, caption_config, prediction_lines


def local_row_offset(local_batch: int):
    """The global index of this device's first row (0 when the batch is not split by hand)."""
    if parallel.bound_data_axis() is None:
        return 0
    return lax.axis_index(parallel.DATA_AXIS) * local_batch


def symmetric_info_nce(image, text, scale):
    """CLIP's loss for this device's rows [b, E] against the global batch's rows (gathered)."""
    all_image, all_text = parallel.data_all_gather((image, text))
    targets = local_row_offset(image.shape[0]) + jnp.arange(image.shape[0])
    image_to_text = scale * image @ all_text.T  # [b, B]
    text_to_image = scale * text @ all_image.T
    ce = optax.softmax_cross_entropy_with_integer_labels
    return (ce(image_to_text, targets).mean() + ce(text_to_image, targets).mean()) / 2


class CLIPTask(CaptionTask):
    name = "clip"
    summary = "CLIP-style dual encoder, symmetric InfoNCE, zero-shot digits from text prompts"
    benchmark_presets = {
        "tiny": {"channels": (4, 8), "hidden": 16, "text_width": 16, "embed": 16, "batch_size": 8},
        "cpu": {"channels": (32, 64), "hidden": 64, "text_width": 64, "embed": 64, "batch_size": 64},
        "gpu": {"channels": (128, 256), "hidden": 1024, "text_width": 512, "embed": 512, "batch_size": 4096,
                "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        return caption_config()

    @property
    def model(self):
        c = self.config
        return DualEncoder(vocab_size=len(dc.VOCAB), channels=tuple(c.channels), hidden=c.hidden,
                           text_width=c.text_width, embed=c.embed, dtype=self.compute_dtype)

    def load_data(self):
        data = super().load_data()
        # The test split's captions [N, L] and their digits [N]: closed over by the compiled eval
        # step as constants, like the judge's params elsewhere.
        return data.with_constants(gallery=(data.test["caption"], data.test["label"]))

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            captions = self.drawn_captions(batch["key"], batch["label"])
            image, text, scale = state.apply_fn({"params": params}, batch["image"], captions)
            return symmetric_info_nce(image, text, scale), scale

        (loss, scale), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "logit_scale": scale}

    def _encode(self, params, images, tokens):
        def encode(m, images, tokens):
            return m.encode_image(images), m.encode_text(tokens)
        return self.model.apply({"params": params}, images, tokens, method=encode)

    def _predictions(self, params, images):
        """(zero-shot digit, index of the top-1 gallery caption) per image."""
        captions = jnp.concatenate([jnp.asarray(self.prompts), jnp.asarray(self.constant("gallery")[0])])
        image, text = self._encode(params, images, captions)
        sims = image @ text.T
        return sims[:, :10].argmax(-1), sims[:, 10:].argmax(-1)

    def eval_step(self, state, batch, rng):
        zero_shot, top = self._predictions(state.params, batch["image"])
        hit = jnp.asarray(self.constant("gallery")[1])[top] == batch["label"]
        m = batch["mask"]
        return {"zero_shot_accuracy": ((zero_shot == batch["label"]) * m).sum(), "recall_at_1": (hit * m).sum()}

    def sample(self, state, rng, batch):
        s = self.sample_images(batch)
        zero_shot, top = self._predictions(state.params, s["image"])
        return {"test_images": s["image"], "label": s["label"], "predicted": zero_shot, "top_caption": top}

    def render_samples(self, outputs):
        gallery = [" ".join(dc.VOCAB.decode(c)) for c in self.constant("gallery")[0]]

        def describe(i, p):
            return f"zero-shot {p}; top caption {gallery[int(outputs['top_caption'][i])]!r}"

        text = ("per test image: the zero-shot digit (held-out prompts) and the top-1 caption retrieved "
                "from the test split's captions\n" + prediction_lines(outputs["predicted"], outputs["label"], describe))
        return {"test_images": outputs["test_images"], "predictions": text}

    def flops_per_step(self):
        b, e = self.config.batch_size, self.config.embed
        similarities = 2 * flops.dense(b, e, b)  # image x text logits, both directions
        return flops.train(self.image_flops(b) + self.text_flops(b) + similarities)

