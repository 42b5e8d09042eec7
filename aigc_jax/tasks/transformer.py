"""`transformer`: the encoder-decoder Transformer (seeds 000, 002) on the synthetic number_words task.

Decoding runs on Flax's key/value cache, one position per new token (see tasks/seq2seq.py for the
metrics and aigc_jax/decoding.py for the compiled greedy and beam loops).
"""

import jax
import jax.numpy as jnp

from aigc_jax import flops
from aigc_jax.models.transformer import Transformer
from aigc_jax.tasks.base import check_heads
from aigc_jax.tasks.seq2seq import Seq2SeqTask, seq2seq_config


class TransformerTask(Seq2SeqTask):
    name = "transformer"
    summary = "Transformer encoder-decoder, numbers -> words (synthetic), exact match (seeds 000, 002)"

    @staticmethod
    def default_config():
        c = seq2seq_config()
        c.width = 128  # model width (embeddings, attention, residual stream)
        c.heads = 4  # attention heads (width must divide by it)
        c.encoder_layers = 2  # encoder blocks
        c.decoder_layers = 2  # decoder blocks
        c.ff = 512  # feed-forward hidden width
        c.positions = "sinusoidal"  # or "learned"
        c.steps = 400
        c.learning_rate = 1e-3
        c.warmup_steps = 100
        return c

    config_ranges = {**Seq2SeqTask.config_ranges, "width": (1, None), "heads": (1, None), "ff": (1, None),
                     "encoder_layers": (1, None), "decoder_layers": (1, None)}
    config_choices = {**Seq2SeqTask.config_choices, "positions": ("sinusoidal", "learned")}

    benchmark_presets = {
        "tiny": {"width": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ff": 64, "batch_size": 8},
        # BENCHMARKS.md: vocab 1000, width 128, 4 heads, 2+2 layers, FF 512, src 32, tgt 32, Adam 1e-4, batch 32
        "cpu": {"vocab_size": 1000, "width": 128, "heads": 4, "encoder_layers": 2, "decoder_layers": 2,
                "ff": 512, "max_source_len": 32, "max_target_len": 32, "learning_rate": 1e-4,
                "warmup_steps": 0, "lr_schedule": "constant", "batch_size": 32},
        # Transformer-base shape ("Attention Is All You Need", table 3) in bf16.
        "gpu": {"vocab_size": 32000, "width": 512, "heads": 8, "encoder_layers": 6, "decoder_layers": 6,
                "ff": 2048, "max_source_len": 128, "max_target_len": 128, "learning_rate": 1e-4,
                "warmup_steps": 0, "lr_schedule": "constant", "batch_size": 256, "dtype": "bfloat16"},
    }

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        check_heads(config)

    @property
    def model(self):
        c = self.config
        return Transformer(vocab_size=self.vocab_size, width=c.width, heads=c.heads,
                           encoder_layers=c.encoder_layers, decoder_layers=c.decoder_layers, ff=c.ff,
                           max_len=max(c.max_source_len, c.max_target_len), positions=c.positions,
                           dtype=self.dtype)

    def decoder_step(self, params, source, copies: int = 1):
        """(step_fn, empty cache) for `decoding`: the source encoded once, repeated per beam."""
        model = self.model
        cached = model.clone(use_cache=True)
        encoded = model.apply({"params": params}, source, method=Transformer.encode)
        encoded, source = jnp.repeat(encoded, copies, axis=0), jnp.repeat(source, copies, axis=0)
        full = jnp.zeros((source.shape[0], self.config.max_target_len), jnp.int32)
        shapes = jax.eval_shape(lambda: cached.apply({"params": params}, encoded, source, full,
                                                     method=Transformer.decode, mutable=["cache"])[1]["cache"])
        cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def step_fn(cache, token, t):
            logits, mutated = cached.apply({"params": params, "cache": cache}, encoded, source, token[:, None], t,
                                           method=Transformer.decode, mutable=["cache"])
            return logits[:, 0], mutated["cache"]

        return step_fn, cache

    def flops_per_step(self):
        c = self.config
        b, s, t, d = c.batch_size, c.max_source_len, c.max_target_len, c.width

        def block(tokens, q_len, kv_len):  # attention projections, scores, weighted sum, then FF
            return (flops.dense(tokens, d, 3 * d) + flops.dense(tokens, d, d) + flops.attention(b, q_len, kv_len, d)
                    + flops.mlp(tokens, (d, c.ff, d)))

        encoder = c.encoder_layers * block(b * s, s, s)
        cross = flops.dense(b * t, d, d) + flops.dense(b * s, d, 2 * d) + flops.dense(b * t, d, d) \
            + flops.attention(b, t, s, d)
        decoder = c.decoder_layers * (block(b * t, t, t) + cross)
        return flops.train(encoder + decoder + flops.dense(b * t, d, self.vocab_size))
