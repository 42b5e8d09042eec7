"""`ngram`: a count-based byte n-gram language model with interpolated Kneser-Ney (the baseline row).

Training is counting: each step scatter-adds every (previous k-1 bytes, next byte) pair of the
batch's windows into dense int32 tables, k = 1..order (order <= 3: order 3 is a 64 MiB table).
Probabilities are interpolated Kneser-Ney with absolute discount D: raw counts at the highest
order the history allows, continuation counts below it, uniform over the 256 bytes at the base,
so no byte ever gets probability 0. The train `loss`/`bpb` are prequential (scored with the counts
before the batch is added); `eval_bpb` is the same held-out number the neural families report.
"""

import jax
import jax.numpy as jnp
from flax import struct

from aigc_jax.engine import parallel
from aigc_jax.errors import UserError
from aigc_jax.models import ngram
from aigc_jax.tasks.language import LN2, LanguageModelTask, lm_config


@struct.dataclass
class NGramState:
    """Plain arrays only (orbax saves it as is): the step and one count table per order."""

    step: jax.Array
    counts: tuple


class NGramTask(LanguageModelTask):
    name = "ngram"
    summary = "byte n-gram counts (order <= 3) with interpolated Kneser-Ney, the baseline language model"

    @staticmethod
    def default_config():
        c = lm_config()
        c.order = 3  # bytes of history + 1; 1..3 (dense tables: order 3 is 64 MiB)
        c.discount = 0.75  # Kneser-Ney absolute discount D, in (0, 1)
        c.steps = 43  # batch 32 x 43 steps: the 1,390 train windows of pydoc_text once (no window counted twice)
        c.log_every = 5
        c.eval_every = 10
        c.ckpt_every = 0  # at the end
        return c

    config_ranges = {**LanguageModelTask.config_ranges, "order": (1, None), "discount": (0.0, 1.0)}

    benchmark_presets = {
        "tiny": {"order": 2, "seq_len": 32, "batch_size": 8},
        "cpu": {"order": 3, "seq_len": 256, "batch_size": 64},
        "gpu": {"order": 3, "seq_len": 256, "batch_size": 512},
    }

    def __init__(self, config, constants=None):
        if config.order > ngram.MAX_ORDER:
            raise UserError(f"config.order={config.order}: expected 1..{ngram.MAX_ORDER} (dense int32 count tables; "
                            f"order {config.order} would need {ngram.table_bytes(config.order) / 2**30:,.0f} GiB)")
        if not 0.0 < config.discount < 1.0:
            raise UserError(f"config.discount={config.discount!r}: expected a value in (0, 1) "
                            "(the Kneser-Ney absolute discount)")
        super().__init__(config, constants)

    def init(self, rng, batch):
        return NGramState(step=jnp.zeros((), jnp.int32), counts=ngram.zero_tables(self.config.order))

    def _padded(self, log_probs: jax.Array) -> jax.Array:
        """Ids past the 256 bytes (a padded vocab_size) get probability 0."""
        extra = self.vocab_size - ngram.VOCAB
        if not extra:
            return log_probs
        return jnp.pad(log_probs, [(0, 0)] * (log_probs.ndim - 1) + [(0, extra)], constant_values=-jnp.inf)

    def log_probs(self, state, inputs):
        return self._padded(ngram.log_probs(state.counts, inputs, self.config.discount))

    def train_step(self, state, batch, rng):
        tokens = batch["tokens"]
        loss = self.token_nats(state, tokens).mean()  # prequential: counts before this batch
        # Under shard_map/pmap each device holds a slice: gather the (small) token windows so every
        # device adds the global batch, instead of summing 64 MiB of count increments across devices.
        axis = parallel.bound_data_axis()
        if axis is not None:
            tokens = jax.lax.all_gather(tokens, axis, tiled=True)
        counts = ngram.count(state.counts, tokens)
        return state.replace(step=state.step + 1, counts=counts), {"loss": loss, "bpb": loss / LN2}

    def decoder(self, state, batch):
        """(step_fn, last bytes per row): log-probabilities as the logits, the same numbers as `log_probs`."""
        step_fn, start = ngram.decoder(state.counts, batch, self.config.discount)

        def padded_step(decoder_state, token, t):
            log_probs, decoder_state = step_fn(decoder_state, token, t)
            return self._padded(log_probs), decoder_state

        return padded_step, start

    def flops_per_step(self):
        c = self.config
        return ngram.flops(c.batch_size, c.seq_len, c.order)
