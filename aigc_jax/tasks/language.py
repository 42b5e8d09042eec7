"""What the byte-level language-model families share: data, bits per byte, sampling from a prompt.

A batch is {"tokens": int32 [B, seq_len + 1]}: a window of the corpus (see aigc_jax/data/text.py);
the model reads tokens[:, :-1] and predicts tokens[:, 1:]. Each family gives
`log_probs(state, inputs)` (next-byte log-probabilities [B, T, V]) and
`decoder(state, batch)` (a step-wise decoder for `aigc_jax.decoding.sample`); eval and sampling
are written once, here.

Metrics: `loss` (nats per byte) and `bpb` (bits per byte) on the train batch; `eval_bpb` over
every window of the held-out split, the number the families are compared by.
"""

import math

import jax
import jax.numpy as jnp
import optax

from aigc_jax import decoding
from aigc_jax.data.text import (EMBEDDED, EVAL_SPLITS, VOCAB_SIZE, decode_bytes, encode_prompt, load_text_splits,
                                train_bytes)
from aigc_jax.engine.config import base_config
from aigc_jax.errors import UserError
from aigc_jax.tasks.base import Task
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, add_schedule_keys

LN2 = math.log(2.0)


def lm_config():
    """The keys every language-model family has, with the defaults of their few-minute CPU runs."""
    c = base_config()
    c.dataset = EMBEDDED  # or a TFDS catalog text dataset prepared in array_record (tiny_shakespeare)
    c.eval_split = "test"  # what evaluation scores: "validation" to choose settings, "test" to report
    c.seq_len = 256  # bytes per window: the context trained on and the held-out windows scored
    c.vocab_size = 0  # 0 = 256 bytes; larger only pads the embedding (benchmark shapes)
    c.batch_size = 32
    c.eval_batch_size = 64
    add_schedule_keys(c)
    c.prompt = "def "  # what samples continue (python -m train sample FAMILY --prompt TEXT)
    c.sample_tokens = 200  # new bytes per sample (--tokens N)
    c.num_samples = 4  # samples written per sample file
    c.temperature = 0.8  # 0 = greedy
    c.top_k = 0  # keep only the k most likely bytes; 0 = all
    c.top_p = 0.95  # nucleus: the smallest set of bytes with this much probability; 1 = all
    c.log_every = 50
    c.eval_every = 250
    c.ckpt_every = 250
    c.sample_every = 0  # steps between sample files; 0 = only at the end
    return c


class LanguageModelTask(Task):
    main_metric = "bpb"
    streams_text = False  # families trained by gradient steps read a catalog corpus from disk
    config_ranges = {"seq_len": (1, None), "vocab_size": (0, None), **SCHEDULE_RANGES,
                     "sample_tokens": (1, None), "num_samples": (1, None),
                     "temperature": (0.0, None), "top_k": (0, None), "top_p": (0.0, 1.0)}
    resumable_keys = ("prompt", "sample_tokens", "num_samples", "temperature", "top_k", "top_p", "eval_split")
    config_choices = {**SCHEDULE_CHOICES, "eval_split": EVAL_SPLITS}

    def __init__(self, config, constants=None):
        if 0 < config.vocab_size < VOCAB_SIZE:
            raise UserError(f"config.vocab_size={config.vocab_size}: expected 0 (the {VOCAB_SIZE} bytes) or "
                            f">= {VOCAB_SIZE}")
        if config.top_p == 0.0:
            raise UserError("config.top_p=0.0: expected a value in (0, 1] (1 keeps every byte)")
        if config.top_k > self.vocab_size_of(config):
            raise UserError(f"config.top_k={config.top_k}: expected at most the vocabulary size "
                            f"{self.vocab_size_of(config)} (0 = all)")
        limit = self.max_sample_length(config)
        if limit is not None and len(config.prompt.encode()) + config.sample_tokens > limit:
            raise UserError(f"prompt ({len(config.prompt.encode())} bytes) + sample_tokens={config.sample_tokens} "
                            f"is longer than the model's context of {limit}; expected at most {limit} bytes")
        super().__init__(config, constants)

    # --- what each family provides -------------------------------------------------------------
    @staticmethod
    def max_sample_length(config) -> int | None:
        """The longest prompt + sample the model can read (a GPT's context); None = unbounded."""
        return None

    def log_probs(self, state, inputs: jax.Array) -> jax.Array:
        """Next-byte log-probabilities [B, T, V] for the bytes `inputs` [B, T]."""
        raise NotImplementedError

    def decoder(self, state, batch: int):
        """(step_fn, initial decoder state) for `aigc_jax.decoding`, for `batch` sequences."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    @staticmethod
    def vocab_size_of(config) -> int:
        return config.vocab_size or VOCAB_SIZE

    @property
    def vocab_size(self) -> int:
        return self.vocab_size_of(self.config)

    def load_data(self):
        c = self.config
        # A catalog corpus's train split stays on disk, read window by window (data/text.py).
        data = load_text_splits(c.dataset, c.data_dir, c.seq_len, c.eval_split,
                                in_memory_mb=c.in_memory_mb if self.streams_text else None)
        # Checked here, before training or sampling starts: a prompt byte the model never saw
        # would start it from an untrained embedding.
        return data.with_constants(prompt=encode_prompt(c.prompt, train_bytes(data)))

    def token_nats(self, state, tokens: jax.Array) -> jax.Array:
        """[B, T]: -log p(byte t + 1 | bytes <= t) in nats."""
        return -jnp.take_along_axis(self.log_probs(state, tokens[:, :-1]), tokens[:, 1:, None], axis=-1)[..., 0]

    def eval_step(self, state, batch, rng):
        return {"nats": (self.token_nats(state, batch["tokens"]).sum(-1) * batch["mask"]).sum()}

    def finalize_eval(self, means):
        per_byte = means["nats"] / self.config.seq_len  # every held-out window has seq_len targets
        return {"loss": per_byte, "bpb": per_byte / LN2}

    def sample(self, state, rng, batch):
        c = self.config
        encoded = self.constant("prompt")
        prompt = jnp.broadcast_to(jnp.asarray(encoded), (c.num_samples, len(encoded)))
        tokens = decoding.sample(*self.decoder(state, c.num_samples), prompt, c.sample_tokens, rng,
                                 c.temperature, c.top_k, c.top_p)
        return {"text": tokens}

    def render_samples(self, outputs):
        c = self.config
        header = (f"{c.num_samples} samples of {c.sample_tokens} bytes after the prompt {c.prompt!r} "
                  f"(temperature {c.temperature}, top_k {c.top_k}, top_p {c.top_p})\n")
        parts = [f"--- sample {i} ---\n{decode_bytes(row)}\n" for i, row in enumerate(outputs["text"])]
        return {"text": header + "".join(parts)}

    def tokens_per_step(self):
        return self.config.batch_size * self.config.seq_len


class NeuralLanguageModelTask(LanguageModelTask):
    """A language model trained by gradient descent on the next-byte cross-entropy."""

    streams_text = True

    def logits(self, params, inputs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def train_logits(self, params, inputs: jax.Array, keys: jax.Array) -> jax.Array:
        """The logits training sees: `logits`, with dropout where a family has it, drawn from the
        per-example `keys` [B] (so every parallel mode draws the same masks)."""
        return self.logits(params, inputs)

    def log_probs(self, state, inputs):
        return jax.nn.log_softmax(self.logits(state.params, inputs))

    def train_step(self, state, batch, rng):
        tokens = batch["tokens"]

        def loss_fn(params):
            logits = self.train_logits(params, tokens[:, :-1], batch["key"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "bpb": loss / LN2}
