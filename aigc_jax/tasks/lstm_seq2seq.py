"""`lstm_seq2seq`: the LSTM encoder-decoder (seed 004) on the synthetic number_words task.

Decoding carries the LSTM's (c, h) per layer from token to token (see tasks/seq2seq.py for the
metrics and aigc_jax/decoding.py for the compiled greedy and beam loops).
"""

import jax
import jax.numpy as jnp

from aigc_jax import flops
from aigc_jax.models.lstm_seq2seq import LSTMSeq2Seq
from aigc_jax.tasks.seq2seq import Seq2SeqTask, seq2seq_config


class LSTMSeq2SeqTask(Seq2SeqTask):
    name = "lstm_seq2seq"
    summary = "LSTM encoder-decoder, numbers -> words (synthetic), exact match (seed 004)"

    @staticmethod
    def default_config():
        c = seq2seq_config()
        c.embed = 64  # token embedding width
        c.hidden = 256  # LSTM state width
        c.layers = 1  # stacked LSTM layers in the encoder and the decoder
        c.steps = 600
        c.learning_rate = 3e-3
        return c

    config_ranges = {**Seq2SeqTask.config_ranges, "embed": (1, None), "hidden": (1, None), "layers": (1, None)}

    benchmark_presets = {
        "tiny": {"embed": 16, "hidden": 32, "batch_size": 8},
        # sized like lstm_lm's cpu shape (BENCHMARKS.md): vocab 1000, embedding 128, LSTM 256, src/tgt 32
        "cpu": {"vocab_size": 1000, "embed": 128, "hidden": 256, "layers": 1, "max_source_len": 32,
                "max_target_len": 32, "learning_rate": 1e-3, "lr_schedule": "constant", "clip_norm": 0.0,
                "batch_size": 32},
        # the paper's model: 4 layers of 1000 cells, 1000-dim embeddings (its vocabulary was 160k/80k)
        "gpu": {"vocab_size": 32000, "embed": 1000, "hidden": 1000, "layers": 4, "max_source_len": 64,
                "max_target_len": 64, "learning_rate": 1e-3, "lr_schedule": "constant", "batch_size": 256,
                "dtype": "bfloat16"},
    }

    @property
    def model(self):
        c = self.config
        return LSTMSeq2Seq(vocab_size=self.vocab_size, embed=c.embed, hidden=c.hidden, layers=c.layers,
                           dtype=self.dtype)

    def decoder_step(self, params, source, copies: int = 1):
        """(step_fn, encoder carries) for `decoding`, repeated per beam."""
        variables = {"params": params}
        carries = self.model.apply(variables, source, method=LSTMSeq2Seq.encode)

        def step_fn(carries, token, t):
            carries, logits = self.model.apply(variables, carries, token, method=LSTMSeq2Seq.step)
            return logits, carries

        return step_fn, jax.tree.map(lambda x: jnp.repeat(x, copies, axis=0), carries)

    def flops_per_step(self):
        c = self.config
        b, h = c.batch_size, c.hidden

        def stack(steps):
            return flops.lstm(b, steps, c.embed, h) + (c.layers - 1) * flops.lstm(b, steps, h, h)

        forward = stack(c.max_source_len) + stack(c.max_target_len) + flops.dense(b * c.max_target_len, h,
                                                                                  self.vocab_size)
        return flops.train(forward)
