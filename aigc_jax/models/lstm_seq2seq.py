"""The LSTM encoder-decoder of "Sequence to Sequence Learning with Neural Networks" (seed 004).

The encoder reads the source backwards (the paper's trick: the first source tokens end up next to
the first target tokens) with `nn.RNN(..., reverse=True)` and `seq_lengths`, which flips only the
real tokens and returns the carry at the last real one, so source padding cannot change anything.
Its final (c, h) per layer starts the decoder. The decoder is one `DecoderStep` (embed, stacked
`OptimizedLSTMCell`s, output layer): `nn.scan` runs it over the target for teacher forcing, and
`step` runs it once per token inside the compiled greedy and beam loops of `aigc_jax.decoding`.
"""

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.data.tokenizer import PAD


class DecoderStep(nn.Module):
    """(carries per layer, token [B]) -> (carries, logits [B, vocab])."""

    vocab_size: int
    embed: int
    hidden: int
    layers: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, carries, token):
        x = nn.Embed(self.vocab_size, self.embed, dtype=self.dtype)(token)
        new = []
        for i, carry in enumerate(carries):
            carry, x = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype, name=f"lstm_{i}")(carry, x)
            new.append(carry)
        return tuple(new), nn.Dense(self.vocab_size, dtype=self.dtype)(x).astype(jnp.float32)


def _scan(fn, **kwargs):
    # Parameters are shared by every step (broadcast), not stacked per step.
    return nn.scan(fn, variable_broadcast="params", split_rngs={"params": False}, **kwargs)


class LSTMSeq2Seq(nn.Module):
    """(source [B, S], decoder input [B, T]) -> next-token logits [B, T, vocab] (float32)."""

    vocab_size: int
    embed: int = 128
    hidden: int = 256
    layers: int = 1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.source_embed = nn.Embed(self.vocab_size, self.embed, dtype=self.dtype)
        # Layer 0 reads the source backwards; later layers read layer 0's output in that order.
        self.encoder = [nn.RNN(nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype), reverse=i == 0,
                               keep_order=False, return_carry=True) for i in range(self.layers)]
        self.decoder = DecoderStep(self.vocab_size, self.embed, self.hidden, self.layers, self.dtype)

    def encode(self, source):
        lengths = (source != PAD).sum(-1)
        x, carries = self.source_embed(source), []
        for rnn in self.encoder:
            carry, x = rnn(x, seq_lengths=lengths)
            carries.append(carry)
        return tuple(carries)

    def __call__(self, source, decoder_input):
        def step(cell, carries, token):
            return cell(carries, token)

        _, logits = _scan(step, in_axes=1, out_axes=1)(self.decoder, self.encode(source), decoder_input)
        return logits

    def step(self, carries, token):
        """One decoder step for `aigc_jax.decoding`: (carries, token [B]) -> (carries, logits [B, V])."""
        return self.decoder(carries, token)
